"""Segmentation models: output shapes for every model and valid size pair (traced, and a real
forward pass at small widths), the size rules, and errors for sizes a model cannot take."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxwsi.models import get, names
from jaxwsi.segment.sizes import (
    auto_candidates,
    nearest_valid,
    size_out_for,
    traced_size_out,
    valid_sizes,
)


def abstract(name: str, nclass: list[int], **options) -> nnx.Module:
    factory = get(name, kind="segmentation")
    return nnx.eval_shape(lambda: factory(nchannel=2, nclass=nclass, rngs=nnx.Rngs(0), **options))


def test_registered_as_segmentation_models():
    assert {"unet2d", "unet_xy", "unet_xy_zoom"} <= set(names("segmentation"))


UNET2D_SIZES = [(64, 64), (32, 96), (256, 256)]


@pytest.mark.parametrize("size", UNET2D_SIZES)
@pytest.mark.parametrize("depth", [2, 4])
def test_unet2d_same_padding(size, depth):
    model = abstract("unet2d", [3], depth=depth, features=8)
    assert traced_size_out(model, size, 2) == [size]
    assert size_out_for("unet2d", size, depth=depth) == size


@pytest.mark.parametrize(("z", "p", "q"), [(29, 4, 4), (48, 11, 11), (36, 5, 7), (50, 12, 12)])
def test_unet_xy_sizes_follow_the_formula(z, p, q):
    size_in = (z, 8 * p + 60, 8 * q + 60)
    expected = (z - 28, 8 * p - 28, 8 * q - 28)
    model = abstract("unet_xy", [2, 2, 3])
    assert traced_size_out(model, size_in, 2) == [expected] * 3  # all heads on one grid
    assert size_out_for("unet_xy", size_in) == expected


@pytest.mark.parametrize(("k", "p", "z"), [(2, 4, 33), (3, 4, 40)])
def test_unet_xy_zoom_sizes_follow_the_formula(k, p, z):
    size_in = (z, k * (8 * p + 60), k * (8 * p + 60))
    side = 8 * k * p - 28 * k - 4
    model = abstract("unet_xy_zoom", [2, 2, 2], zoom_ratio=k, features=8)
    assert traced_size_out(model, size_in, 2) == [(z - 32, side, side)] * 3
    assert size_out_for("unet_xy_zoom", size_in, zoom_ratio=k) == (z - 32, side, side)


def test_unet_xy_default_channels():
    """32→64→128→256 encoder, 512 bottleneck, BatchNorm without scale/shift."""
    model = abstract("unet_xy", [2, 2, 2])
    body = model.body
    assert body.enc1.conv2.kernel.shape == (3, 3, 3, 32, 64)
    assert body.enc4.conv2.kernel.shape == (3, 3, 3, 256, 512)
    assert body.enc1.norm1.scale is None and body.enc1.norm1.bias is None
    assert model.aux_half.up.kernel.shape[:3] == (1, 4, 4)
    assert model.aux_quarter.up.kernel.shape[:3] == (1, 8, 8)


def test_valid_sizes_are_all_valid():
    for name, options, max_size in [
        ("unet2d", {"depth": 3}, (200, 200)),
        ("unet_xy", {}, (40, 200, 200)),
        ("unet_xy_zoom", {"zoom_ratio": 2}, (40, 400, 400)),
    ]:
        pairs = valid_sizes(name, max_size=max_size, **options)
        assert pairs
        for size_in, size_out in pairs:
            assert size_out_for(name, size_in, **options) == size_out
            assert all(i <= m for i, m in zip(size_in, max_size, strict=True))
    assert [p[0][1] for p in valid_sizes("unet_xy", max_size=(30, 110, 110))] == [92, 100, 108]


def test_auto_candidates_fit_the_smallest_image():
    pairs = auto_candidates("unet2d", (100, 300), depth=2, limit=5)
    assert [i for i, _ in pairs] == [(4, 4), (8, 8), (20, 20), (44, 44), (100, 100)]
    pairs = auto_candidates("unet_xy", (20, 61, 57))
    assert all(o[0] == 20 and o[1] <= 57 for _, o in pairs)


def test_invalid_sizes():
    assert size_out_for("unet2d", (60, 64)) is None  # not divisible by 16
    assert size_out_for("unet_xy", (29, 90, 92)) is None
    assert size_out_for("unet_xy", (28, 92, 92)) is None  # z too small for 14 valid convs
    assert size_out_for("unet_xy", (64, 64)) is None
    assert nearest_valid("unet2d", (60, 70)) == [(48, 64), (64, 80)]
    assert nearest_valid("unet_xy", (30, 95, 150)) == [(30, 92, 148)]
    with pytest.raises(ValueError, match="nclass: unet_xy has 3 output head"):
        get("unet_xy", kind="segmentation")(nchannel=1, nclass=[2], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="nclass: unet2d has 1 output head"):
        get("unet2d", kind="segmentation")(nchannel=1, nclass=[2, 2], rngs=nnx.Rngs(0))


@pytest.mark.parametrize(
    ("name", "options", "size_in", "size_out"),
    [
        ("unet2d", {"depth": 2, "features": 4}, (32, 48), (32, 48)),
        ("unet_xy", {"features": 2}, (29, 92, 100), (1, 4, 12)),
        ("unet_xy_zoom", {"features": 2, "zoom_ratio": 2}, (33, 184, 184), (1, 4, 4)),
    ],
)
def test_forward_pass(name, options, size_in, size_out):
    """A real (jitted) forward pass in train mode (batch statistics) gives finite logits of the
    traced shape (eval mode runs in the tiling tests). unet2d is initialized by Flax; the 3D
    models get seeded host weights (their ~20 initializer compiles would dominate the test)."""
    nclass = [2] if name == "unet2d" else [2, 2, 2]
    factory = get(name, kind="segmentation")

    def create():
        return factory(nchannel=1, nclass=nclass, rngs=nnx.Rngs(0), **options)

    if name == "unet2d":
        model = create()
        assert jax.tree.leaves(nnx.state(model, nnx.BatchStat))  # BatchNorm statistics exist
        graphdef, state = nnx.split(model)
    else:
        graphdef, state = nnx.split(nnx.eval_shape(create))
        rng = np.random.default_rng(0)

        def fill(path, leaf):
            if "['var']" in jax.tree_util.keystr(path):
                return np.ones(leaf.shape, leaf.dtype)
            return (0.1 * rng.normal(size=leaf.shape)).astype(leaf.dtype)

        state = jax.tree_util.tree_map_with_path(fill, state)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, *size_in, 1)), jnp.float32)
    outputs = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x)
    assert [o.shape for o in outputs] == [(1, *size_out, 2)] * len(nclass)
    assert all(bool(jnp.isfinite(o).all()) for o in outputs)
