"""Each segmentation loss and metric against values computed by hand, including cost-map
weights and ignored voxels (weight 0)."""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

from jaxwsi.segment import losses
from jaxwsi.segment.data import class_targets

# Four voxels, one sigmoid channel: p = [0.5, 0.75, 0.25, 0.75]; targets [1, 1, 0, 0];
# cost map [1, 2, 1, 0]: the second voxel counts twice, the last is ignored.
LOGITS = jnp.array([0.0, math.log(3), -math.log(3), math.log(3)]).reshape(1, 2, 2, 1)
TARGET = jnp.array([1, 1, 0, 0]).reshape(1, 2, 2)
WEIGHT = jnp.array([1.0, 2.0, 1.0, 0.0]).reshape(1, 2, 2)
S = losses.SMOOTH

HAND = {
    # Σ w·(−log p[t]) / Σ w = (ln 2 + 2 ln(4/3) + ln(4/3)) / 4
    "bce": (math.log(2) + 3 * math.log(4 / 3)) / 4,
    # I = .5 + 2·.75 = 2, Σ w p = .5 + 1.5 + .25 = 2.25, Σ w t = 3, U = 3.25
    "jaccard": 1 - (2 + S) / (3.25 + S),
    "dice": 1 - (4 + S) / (5.25 + S),
    # (p − t)² = [.25, .0625, .0625, .5625] (both channels alike), weighted by [1, 2, 1, 0]
    "mse": (0.25 + 2 * 0.0625 + 0.0625) / 4,
    "mae": (0.5 + 2 * 0.25 + 0.25) / 4,
}
HAND["bce_jaccard"] = HAND["bce"] + HAND["jaccard"]
HAND["aux"] = HAND["bce"]


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_loss_by_hand(name):
    assert float(losses.LOSSES[name](LOGITS, TARGET, WEIGHT)) == pytest.approx(HAND[name], 1e-5)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_softmax_pair_equals_sigmoid(name):
    """Two-class softmax logits [0, x] give the same probabilities as the sigmoid of x."""
    pair = jnp.concatenate([jnp.zeros_like(LOGITS), LOGITS], -1)
    assert float(losses.LOSSES[name](pair, TARGET, WEIGHT)) == pytest.approx(HAND[name], 1e-5)


@pytest.mark.parametrize("name", sorted(losses.LOSSES))
def test_ignored_voxels_do_not_count(name):
    """Whatever the prediction or label at a weight-0 voxel, the loss is the same."""
    other_logits = LOGITS.at[0, 1, 1, 0].set(-7.0)
    other_target = TARGET.at[0, 1, 1].set(1)
    fn = losses.LOSSES[name]
    assert float(fn(other_logits, other_target, WEIGHT)) == pytest.approx(HAND[name], 1e-5)


def test_cost_map_scales_voxels():
    """Weight 2 on a voxel equals that voxel counted twice."""
    logits = jnp.array([0.0, math.log(3), math.log(3), -math.log(3)]).reshape(1, 1, 4, 1)
    target = jnp.array([1, 1, 1, 0]).reshape(1, 1, 4)
    ones = jnp.ones((1, 1, 4))
    doubled = losses.bce(LOGITS, TARGET, WEIGHT)
    # The same voxels without the ignored one, the weight-2 voxel duplicated:
    assert float(losses.bce(logits, target, ones)) == pytest.approx(float(doubled), 1e-6)


def test_multiclass_jaccard_over_foreground_classes():
    """Three classes: soft IoU of classes 1 and 2, averaged; background excluded."""
    probs = np.array([[0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
    logits = jnp.log(jnp.asarray(probs)).reshape(1, 1, 2, 3)
    target = jnp.array([1, 2]).reshape(1, 1, 2)
    weight = jnp.ones((1, 1, 2))
    # class 1: I = .5, Σp = .6, Σt = 1 → .5/1.1; class 2: I = .8, Σp = 1.1, Σt = 1 → .8/1.3
    iou = ((0.5 + S) / (1.1 + S) + (0.8 + S) / (1.3 + S)) / 2
    assert float(losses.jaccard(logits, target, weight)) == pytest.approx(1 - iou, 1e-5)


def test_heads_loss_weights_each_head():
    second = -LOGITS
    total = losses.heads_loss("aux", [LOGITS, second], TARGET, WEIGHT, [1.0, 0.5])
    expected = HAND["bce"] + 0.5 * float(losses.bce(second, TARGET, WEIGHT))
    assert float(total) == pytest.approx(expected, 1e-6)


def test_metrics_by_hand():
    """p > 0.5 gives [no, yes, no, yes]; over the 3 scored voxels tp=1, fn=1, tn=1, fp=0."""
    m = {k: float(v) for k, v in losses.metrics(LOGITS, TARGET, WEIGHT).items()}
    assert m == pytest.approx(
        {"iou": 0.5, "dice": 2 / 3, "precision": 1.0, "recall": 0.5, "accuracy": 2 / 3}
    )


def test_ignore_index_gives_weight_zero():
    label = np.array([[0, 3, 255], [7, 255, 0]])
    weight = np.array([[1.0, 0.5, 1.0], [1.0, 1.0, 2.0]], np.float32)
    target, w = class_targets(label, weight, 2, 255, "labels.tif")
    assert target.tolist() == [[0, 1, 0], [1, 0, 0]]  # instance labels → foreground
    assert w.tolist() == [[1.0, 0.5, 0.0], [1.0, 0.0, 2.0]]
    target, w = class_targets(np.array([0, 2, 1]), np.ones(3), 3, None, "l.tif")
    assert target.tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="l.tif: labels up to 5, but the head has 3 classes"):
        class_targets(np.array([0, 5]), np.ones(2), 3, None, "l.tif")
