"""Segmentation inputs: configuration errors, data folders (both layouts, every mismatch),
normalization, patch buffers and augmentations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from jaxwsi.segment.augment import augment_patch
from jaxwsi.segment.config import (
    AugmentConfig,
    ConfigError,
    NormalizationConfig,
    config_from_dict,
    load_config,
)
from jaxwsi.segment.data import LoadedSample, SegmentDataError, find_samples, load_samples
from jaxwsi.segment.normalize import normalize
from jaxwsi.segment.patches import PatchSampler, epoch_order

# The issue's minimal configuration, verbatim (the loader line split only for the line length).
MINIMAL = (
    "model: {name: unet2d}\n"
    "nchannel: 1\n"
    "nclass: [2]\n"
    "size_in: [256, 256]\n"
    "size_out: [256, 256]\n"
    "checkpoint_dir: runs/nuclei\n"
    "loader: {datafolder: data/nuclei, batch_size: 8, PatchPerBuffer: 64, epoch_shuffle: 5, "
    "NumWorkers: 1}\n"
    "loss: {name: bce_jaccard}\n"
    "learning_rate: 0.001\n"
    "epochs: 30\n"
)


def test_minimal_config_from_the_issue(tmp_path):
    path = tmp_path / "nuclei.yaml"
    path.write_text(MINIMAL)
    config = load_config(path)
    assert config.model.name == "unet2d" and config.size_in == [256, 256]
    assert config.loader.PatchPerBuffer == 64 and config.loader.batch_size == 8
    assert config.loss.name == "bce_jaccard" and config.epochs == 30
    # defaults for what it leaves out
    assert config.optimizer == "adam" and config.keep_n_best == 1 and config.load_at_end == "best"
    assert config_from_dict(config.to_dict()) == config  # what a saved model stores


BASE = {"loader": {"datafolder": "d"}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lodaer": {}}, "unknown key 'lodaer' (did you mean 'loader'?)"),
        ({"loader": {"datafolder": "d", "batch_size": "big"}}, "loader.batch_size: expected"),
        ({"loader": {"datafolder": "d", "PatchPerBufer": 3}}, "did you mean 'PatchPerBuffer'"),
        ({"loader": {}}, "loader.datafolder: required"),
        ({"loader": {"datafolder": "d", "batch_size": 0}}, "loader.batch_size: must be >= 1"),
        ({"model": {"name": "nope"}}, "model.name: no segmentation model named 'nope'"),
        ({"model": {"name": "unet2d", "zoom_ratio": 3}}, "model.zoom_ratio: not an option"),
        ({"loss": {"name": "focal"}}, "loss.name: 'focal' is not one of"),
        ({"loss": {"loss_weight": [1, 1]}}, "loss.loss_weight: one weight per output head"),
        ({"nclass": []}, "nclass: needs one entry"),
        ({"nclass": [2, 0]}, "nclass[1]: must be >= 1"),
        ({"size_in": [64]}, "size_in: 2 (y, x) or 3 (z, y, x) sizes"),
        ({"size_in": "big"}, "size_in: expected"),
        ({"size_in": "auto", "size_out": [64, 64]}, "size_out: must be auto"),
        ({"size_out": [64, 64, 8]}, "size_out: [64, 64, 8] has not the rank"),
        ({"optimizer": "lbfgs"}, "optimizer: 'lbfgs' is not one of"),
        ({"metrics": ["auc"]}, "metrics: 'auc' is not one of"),
        ({"epochs": 0}, "epochs: must be >= 1"),
        ({"steps_per_epoch": 0}, "steps_per_epoch: -1"),
        ({"load_at_end": "first"}, "load_at_end: expected one of 'best' | 'last'"),
        ({"validation_split": 1.5}, "validation_split: in [0, 1)"),
        ({"normalization": {"method": "zscore"}}, "normalization.method: expected one of"),
        ({"normalization": {"percentiles": [99, 2]}}, "normalization.percentiles"),
        ({"augmentations": {"flip": "yes"}}, "augmentations.flip: expected true or false"),
        ({"prediction": {"overlap": 1.0}}, "prediction.overlap: in [0, 1)"),
        ({"learning_rate": "fast"}, "learning_rate: expected a number"),
        ({"nchannel": 1.5}, "nchannel: expected an integer"),
    ],
)
def test_bad_config(change, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict({**BASE, **change}, "run.yaml")
    assert str(info.value).startswith("run.yaml: ")
    assert message in str(info.value)


def test_bad_yaml_files(tmp_path):
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {name: unet2d\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="config: expected a mapping"):
        load_config(bad)


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".png":
        Image.fromarray(array).save(path)
    else:
        tifffile.imwrite(path, array)


def _load(folder, **kw):
    options = {
        "spatial_dims": 2,
        "nchannel": 1,
        "nclass": 2,
        "ignore_index": None,
        "normalization": NormalizationConfig(),
    }
    return load_samples(find_samples(folder), **{**options, **kw})


def test_paired_folders_and_masks(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.tif", "b.png"):
        _write(tmp_path / "input" / name, rng.integers(0, 255, (20, 30), dtype=np.uint8))
        _write(tmp_path / "output" / name, (rng.random((20, 30)) > 0.5).astype(np.uint8) * 7)
        _write(tmp_path / "mask" / name, np.ones((20, 30), np.uint8))
    samples = find_samples(tmp_path)
    assert [s.name for s in samples] == ["a", "b"]
    assert all(s.weight is not None and s.weight.parent.name == "mask" for s in samples)
    loaded = _load(tmp_path)
    assert loaded[0].image.shape == (20, 30, 1) and loaded[0].image.dtype == np.float32
    assert set(np.unique(loaded[0].label)) <= {0, 1}  # label 7 is foreground


def test_allen_layout_with_cost_maps(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        _write(tmp_path / f"img_{i:03d}.tif", rng.integers(0, 4000, (5, 16, 16), dtype=np.uint16))
        _write(tmp_path / f"img_{i:03d}_GT.tif", np.ones((5, 16, 16), np.uint8))
    _write(tmp_path / "img_000_CM.tif", np.zeros((5, 16, 16), np.float32))
    samples = find_samples(tmp_path)
    assert [(s.name, s.weight is not None) for s in samples] == [
        ("img_000", True),
        ("img_001", False),
    ]
    loaded = _load(tmp_path, spatial_dims=3)
    assert loaded[0].image.shape == (5, 16, 16, 1)
    assert loaded[0].weight.max() == 0 and loaded[1].weight.min() == 1


def test_mismatched_folders_are_listed(tmp_path):
    for name in ("a.tif", "b.tif", "c.tif"):
        _write(tmp_path / "input" / name, np.zeros((8, 8), np.uint8))
    for name in ("a.tif", "d.tif"):
        _write(tmp_path / "output" / name, np.zeros((8, 8), np.uint8))
    with pytest.raises(SegmentDataError) as info:
        find_samples(tmp_path)
    message = str(info.value)
    assert "in input/ but not output/: b.tif, c.tif" in message
    assert "in output/ but not input/: d.tif" in message


def test_allen_layout_mismatches_are_listed(tmp_path):
    _write(tmp_path / "img_001.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "img_002_GT.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "img_003_CM.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(SegmentDataError) as info:
        find_samples(tmp_path)
    message = str(info.value)
    assert "labels without an image: img_002" in message
    assert "images without _GT labels: img_001" in message
    assert "cost maps without an image: img_003" in message


def test_bad_files_are_listed(tmp_path):
    _write(tmp_path / "input" / "shape.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "output" / "shape.tif", np.zeros((8, 9), np.uint8))
    _write(tmp_path / "input" / "channels.tif", np.zeros((8, 8, 3), np.uint8))
    _write(tmp_path / "output" / "channels.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "input" / "classes.tif", np.zeros((8, 8), np.uint8))
    _write(tmp_path / "output" / "classes.tif", np.full((8, 8), 4, np.uint8))
    (tmp_path / "input" / "broken.png").write_bytes(b"not a png")
    _write(tmp_path / "output" / "broken.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(SegmentDataError, match="broken.png: cannot read the image"):
        _load(tmp_path)
    (tmp_path / "input" / "broken.png").unlink()
    (tmp_path / "output" / "broken.png").unlink()
    with pytest.raises(SegmentDataError) as info:
        _load(tmp_path, nclass=3)
    message = str(info.value)
    assert message.startswith("3 bad training file(s)")
    assert "shape.tif: shape (8, 9), its image shape.tif is (8, 8)" in message
    assert "channels.tif: 3 channels (shape (8, 8, 3)), nchannel is 1" in message
    assert "classes.tif: labels up to 4, but the head has 3 classes" in message


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(SegmentDataError, match="is not a folder"):
        find_samples(tmp_path / "nope")
    with pytest.raises(SegmentDataError, match="no training images"):
        find_samples(tmp_path)
    (tmp_path / "input").mkdir()
    with pytest.raises(SegmentDataError, match="needs both input/ and output/"):
        find_samples(tmp_path)


def test_normalization_methods():
    x = np.arange(1000, dtype=np.float32).reshape(10, 100, 1)
    x[0, 0, 0] = 1e6  # an outlier
    plain = NormalizationConfig(method="minmax", clip="none")
    assert normalize(x, plain).max() == 1.0 and np.median(normalize(x, plain)) < 0.01
    clipped = normalize(x, NormalizationConfig(method="minmax", clip="high", clip_fraction=0.01))
    assert np.median(clipped) == pytest.approx(0.5, abs=0.02)  # the outlier no longer dominates
    std = normalize(x, NormalizationConfig(method="standard", clip="both"))
    assert std.mean() == pytest.approx(0, abs=1e-4) and std.std() == pytest.approx(1, abs=1e-4)
    pct = normalize(x, NormalizationConfig(method="percentile", clip="none", percentiles=[10, 90]))
    assert np.percentile(pct, 10) == pytest.approx(0, abs=1e-3)
    assert np.percentile(pct, 90) == pytest.approx(1, abs=1e-3)
    two = np.stack([x[..., 0], 10 * x[..., 0]], -1)
    per_channel = normalize(two, NormalizationConfig(method="max", clip="none"))
    np.testing.assert_allclose(per_channel[..., 0], per_channel[..., 1], rtol=1e-6)
    none = normalize(x.astype(np.uint16), NormalizationConfig(method="none", clip="none"))
    assert none.dtype == np.float32 and none[5, 5, 0] == x[5, 5, 0]


def _sample(shape=(40, 50), seed=0) -> LoadedSample:
    rng = np.random.default_rng(seed)
    image = rng.random((*shape, 1)).astype(np.float32)
    label = (image[..., 0] > 0.5).astype(np.int32)
    return LoadedSample(f"s{seed}", image, label, np.ones(shape, np.float32))


def test_patches_spread_evenly_and_are_seeded():
    samples = [_sample(seed=i) for i in range(3)]
    sampler = PatchSampler(samples, (16, 16), (8, 8), patches=8, seed=1, augment=AugmentConfig())
    counts = np.bincount(sampler.assignment(0), minlength=3)
    assert sorted(counts.tolist()) == [2, 3, 3]
    a, b = sampler.buffer(0), sampler.buffer(0)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert a["image"].shape == (8, 16, 16, 1) and a["label"].shape == (8, 8, 8)
    assert not np.array_equal(a["image"], sampler.buffer(1)["image"])  # refreshed buffer
    threaded = PatchSampler(
        samples, (16, 16), (8, 8), patches=8, seed=1, augment=AugmentConfig(), workers=3
    )
    assert all(np.array_equal(a[k], threaded.buffer(0)[k]) for k in a)  # workers don't matter
    order = epoch_order(1, 0, 8, 20)
    assert len(order) == 20 and sorted(order[:8].tolist()) == list(range(8))


def test_patch_context_and_padding():
    """Without augmentation a patch is the image window around its output window; labels
    outside a too-small image get weight 0."""
    sample = _sample(shape=(6, 30))
    sampler = PatchSampler([sample], (12, 12), (8, 8), patches=4, seed=0)
    buffer = sampler.buffer(0)
    for image, label, weight in zip(
        buffer["image"], buffer["label"], buffer["weight"], strict=True
    ):
        assert weight[:6].min() == 1 and weight[6:].max() == 0  # image is 6 rows high
        # the label is the thresholded centre of the input window where weight is 1
        np.testing.assert_array_equal(label[:6], (image[2:8, 2:10, 0] > 0.5).astype(np.int32))


@pytest.mark.parametrize("shape", [(24, 24), (3, 24, 24)])
def test_augmentations_move_labels_with_the_image(shape):
    """Geometric augmentations keep label == (image > 0.5) and weights aligned, in 2D and 3D."""
    rng = np.random.default_rng(0)
    image = rng.random((*shape, 1)).astype(np.float32)
    label = (image[..., 0] > 0.5).astype(np.int32)
    weight = np.arange(label.size, dtype=np.float32).reshape(shape)
    config = AugmentConfig(flip=True, rotate90=True)
    changed = 0
    for seed in range(6):
        img, lab, w = augment_patch(image, label, weight, config, np.random.default_rng(seed))
        np.testing.assert_array_equal(lab, (img[..., 0] > 0.5).astype(np.int32))
        assert sorted(w.ravel().tolist()) == sorted(weight.ravel().tolist())
        changed += not np.array_equal(img, image)
    assert changed >= 4
    elastic = AugmentConfig(flip=False, rotate90=False, elastic=3.0, elastic_sigma=4.0)
    smooth = np.broadcast_to(np.linspace(0, 1, shape[-1]), shape)[..., None].astype(np.float32)
    img, lab, _ = augment_patch(
        smooth, (smooth[..., 0] > 0.5).astype(np.int32), weight, elastic, rng
    )
    assert not np.array_equal(img, smooth)
    # labels are resampled with the same field (nearest): they still match away from the edge
    agree = lab == (img[..., 0] > 0.5)
    assert agree.mean() > 0.95
    bright = augment_patch(image, label, weight, AugmentConfig(False, False, intensity=0.5), rng)
    assert not np.allclose(bright[0], image) and np.array_equal(bright[1], label)
