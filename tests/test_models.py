"""The model zoo: every backbone and extractor at 64 px, parameter counts against the published
numbers (counted on `nnx.eval_shape` structures, nothing allocated), train/eval behaviour,
`TileModel` heads, clinical inputs, drop_images, freezing masks and registry errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxwsi.models as M

TILE = ["efficientnet_b0", "mobilenet_v2", "resnet18", "resnet50", "vit_s16", "xception"]
EXTRACTORS = {"resnet50_trunc": 1024, "vit_b16": 768, "vit_l16": 1024}


def abstract(name: str, kind: str = "tile", **kwargs) -> nnx.Module:
    return nnx.eval_shape(lambda: M.get(name, kind)(rngs=nnx.Rngs(0), **kwargs))


def materialize(model: nnx.Module, seed: int = 0) -> nnx.Module:
    """Seeded numpy values for an abstract model (He-scaled kernels, unit BatchNorm variance):
    a runnable model without paying eager initialization, one XLA compile per parameter shape."""
    rng = np.random.default_rng(seed)
    graphdef, state = nnx.split(model)

    def fill(path, leaf):
        name = str(path[-2].key)  # the Variable's attribute name ([-1] is its .value)
        if name == "var":
            return jnp.asarray(1.0 + 0.1 * rng.random(leaf.shape), leaf.dtype)
        if name in ("kernel", "gamma", "cls_token", "pos_embed"):
            fan_in = int(np.prod(leaf.shape[:-1])) or 1
            return jnp.asarray(rng.normal(0, (2.0 / fan_in) ** 0.5, leaf.shape), leaf.dtype)
        return jnp.asarray(0.05 * rng.normal(size=leaf.shape) + (name == "scale"), leaf.dtype)

    return nnx.merge(graphdef, jax.tree_util.tree_map_with_path(fill, state))


def forward(model: nnx.Module, x, *args):
    """``model(x, *args)`` compiled once with plain jax.jit over the split state."""
    graphdef, state = nnx.split(model)
    return jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))(state, x, *args)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(2, 64, 64, 3)).astype(np.float32)


def test_registry_lists_the_zoo():
    assert set(TILE) <= set(M.names("tile"))
    assert set(EXTRACTORS) <= set(M.names("extractor"))
    assert set(TILE) | set(EXTRACTORS) <= set(M.names())


@pytest.mark.parametrize("name", TILE)
def test_backbone_features_at_64px(name, images):
    options = {"img_size": 64} if name.startswith("vit") else {}
    model = materialize(abstract(name, **options))
    model.eval()
    y = forward(model, images)
    assert y.shape == (2, model.num_features)
    assert np.isfinite(np.asarray(y)).all()
    assert not np.allclose(y[0], y[1])  # the two images give different features


@pytest.mark.parametrize("name", ["resnet50_trunc", "vit_b16"])
def test_extractor_features_at_64px(name, images):
    options = {"img_size": 64} if name.startswith("vit") else {}
    model = materialize(abstract(name, "extractor", **options))
    model.eval()
    y = forward(model, images)
    assert y.shape == (2, EXTRACTORS[name]) and np.isfinite(np.asarray(y)).all()


@pytest.mark.parametrize("name", list(EXTRACTORS))
def test_extractor_size_and_preprocessing(name):
    model = abstract(name, "extractor")
    assert model.num_features == EXTRACTORS[name]
    pre = model.preprocessing
    assert (
        pre.size == 224 and pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
    )
    graphdef, state = nnx.split(model)
    out = jax.eval_shape(
        lambda s, x: nnx.merge(graphdef, s)(x),
        state,
        jax.ShapeDtypeStruct((3, 224, 224, 3), jnp.float32),
    )
    assert out.shape == (3, EXTRACTORS[name])


# Published parameter counts, ImageNet classifier (num_features × 1000 + 1000) included.
PUBLISHED = {
    ("resnet18", "tile"): 11_689_512,  # torchvision
    ("resnet50", "tile"): 25_557_032,  # torchvision
    ("mobilenet_v2", "tile"): 3_504_872,  # torchvision
    ("efficientnet_b0", "tile"): 5_288_548,  # torchvision
    ("xception", "tile"): 22_855_952,  # Keras: trainable (22,910,480 with BatchNorm moving stats)
    ("vit_s16", "tile"): 22_050_664,  # timm vit_small_patch16_224
    ("vit_b16", "extractor"): 86_567_656,  # timm vit_base_patch16_224
}


@pytest.mark.parametrize(("name", "kind"), list(PUBLISHED))
def test_parameter_counts_match_published(name, kind):
    model = abstract(name, kind)
    classifier = model.num_features * 1000 + 1000
    assert M.param_count(model) + classifier == PUBLISHED[(name, kind)]


def test_xception_total_with_batchnorm_statistics_matches_keras():
    model = abstract("xception")
    stats = sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.BatchStat)))
    assert M.param_count(model) + stats + 2048 * 1000 + 1000 == 22_910_480


def test_vit_l16_is_timm_large_plus_uni_layer_scale():
    plain = abstract("vit_l16", "extractor", layer_scale=None)
    assert M.param_count(plain) + 1024 * 1000 + 1000 == 304_326_632  # timm vit_large_patch16_224
    uni = abstract("vit_l16", "extractor")
    assert M.param_count(uni) - M.param_count(plain) == 24 * 2 * 1024  # ls1/ls2 gammas


@pytest.fixture(scope="module")
def resnet18() -> nnx.Module:
    return materialize(abstract("resnet18"), seed=1)


def run_with_state(model: nnx.Module):
    """``(x) -> (model(x), state after the call)``, compiled for the model's current mode."""
    graphdef, state = nnx.split(model)

    def run(s, x):
        m = nnx.merge(graphdef, s)
        return m(x), nnx.state(m)

    return jax.jit(run), state


def test_batchnorm_uses_batch_statistics_in_train_mode_only(resnet18, images):
    other = np.concatenate([images[:1], images[1:] * 3.0 + 1.0])
    run, state = run_with_state(resnet18)
    y_train, after = run(state, images)
    y_train2, _ = run(state, other)
    # Train mode: the first image's features depend on the rest of the batch (batch statistics).
    assert not np.allclose(y_train[0], y_train2[0], atol=1e-5)
    before_mean = np.asarray(state["bn1"]["mean"][...])
    assert not np.allclose(np.asarray(after["bn1"]["mean"][...]), before_mean)
    resnet18.eval()
    run, state = run_with_state(resnet18)
    y_eval, after_eval = run(state, images)
    y_eval2, _ = run(state, other)
    np.testing.assert_allclose(y_eval[0], y_eval2[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(after_eval["bn1"]["mean"][...]), before_mean)
    resnet18.train()


@pytest.mark.parametrize("name", ["xception"])
def test_bfloat16_backbone_close_to_float32(name, images):
    """The GPU configuration (bf16 compute, float32 params) of Slideflow's default backbone."""
    f32 = materialize(abstract(name), seed=4)
    b16 = materialize(abstract(name, dtype=jnp.bfloat16), seed=4)
    assert {x.dtype for x in jax.tree.leaves(nnx.state(b16))} == {np.dtype("float32")}
    f32.eval()
    b16.eval()
    want = np.asarray(forward(f32, images))
    got = forward(b16, images)
    assert got.dtype == jnp.bfloat16
    error = np.linalg.norm(np.asarray(got, np.float32) - want) / np.linalg.norm(want)
    assert error < 0.05  # bf16 keeps ~3 significant digits; ~2% over these depths


def test_pooling_max_and_avg(images):
    avg = materialize(abstract("resnet18", pooling="avg"), seed=2)
    mx = materialize(abstract("resnet18", pooling="max"), seed=2)
    avg.eval()
    mx.eval()
    a, m = np.asarray(forward(avg, images)), np.asarray(forward(mx, images))
    assert (m >= a - 1e-6).all() and (m > a + 1e-6).any()  # max over positions ≥ their mean
    with pytest.raises(ValueError, match="pooling must be one of avg, max"):
        abstract("resnet18", pooling="cls")
    with pytest.raises(ValueError, match="pooling must be one of cls, avg"):
        abstract("vit_s16", pooling="max")


def test_vit_takes_other_input_sizes(images):
    model = materialize(abstract("vit_s16", img_size=64), seed=3)
    model.eval()
    y = forward(model, np.zeros((1, 96, 96, 3), np.float32))  # 6×6 patches, embeddings resized
    assert y.shape == (1, 384) and np.isfinite(np.asarray(y)).all()


# --- TileModel --------------------------------------------------------------------------------


class TinyCNN(nnx.Module):
    """A user-defined backbone: one conv, global average pooling, 8 features."""

    def __init__(self, *, rngs, dtype=jnp.float32, param_dtype=jnp.float32, pooling="avg"):
        self.conv = nnx.Conv(
            3, 8, (3, 3), strides=2, dtype=dtype, param_dtype=param_dtype, rngs=rngs
        )
        self.bn = nnx.BatchNorm(8, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
        self.pooling = pooling
        self.num_features = 8
        self.block_paths = (("conv",), ("bn",))

    def __call__(self, x):
        y = nnx.relu(self.bn(self.conv(x)))
        return y.mean(axis=(1, 2)) if self.pooling == "avg" else y.max(axis=(1, 2))


@M.register("tiny_cnn")
def tiny_cnn(**kwargs):
    return TinyCNN(**kwargs)


def test_custom_backbone_by_name_with_multi_outcome_heads_and_clinical(images):
    model = M.build_tile_model(
        "tiny_cnn",
        num_classes=[2, 3, 1],
        num_clinical=4,
        hidden_layers=2,
        hidden_layer_width=16,
        rngs=nnx.Rngs(0),
    )
    assert isinstance(model.backbone, TinyCNN) and model.num_features == 16
    model.eval()
    clinical = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    outs = forward(model, images, clinical)
    assert [o.shape for o in outs] == [(2, 2), (2, 3), (2, 1)]
    assert all(o.dtype == jnp.float32 for o in outs)
    changed = forward(model, images, clinical + 1.0)
    assert not np.allclose(outs[0], changed[0])  # clinical inputs reach the heads
    assert model.features(images).shape == (2, 8)
    with pytest.raises(ValueError, match=r"clinical inputs must be \[batch, 4\], got \(2, 3\)"):
        model(images, clinical[:, :3])
    with pytest.raises(ValueError, match="clinical inputs must be"):
        model(images)


def test_drop_images_uses_clinical_inputs_alone():
    model = M.build_tile_model(
        "no_such_backbone", num_classes=[2], num_clinical=3, drop_images=True, rngs=nnx.Rngs(0)
    )
    assert model.backbone is None
    assert M.param_count(model) == 3 * 2 + 2
    clinical = np.eye(3, dtype=np.float32)
    (out,) = model(None, clinical)
    kernel, bias = np.asarray(model.heads[0].kernel[...]), np.asarray(model.heads[0].bias[...])
    np.testing.assert_allclose(out, clinical @ kernel + bias, rtol=1e-6)
    with pytest.raises(ValueError, match="drop_images"):
        model.features(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="needs clinical inputs"):
        M.build_tile_model("tiny_cnn", num_classes=[2], drop_images=True, rngs=nnx.Rngs(0))


def test_dropout_differs_in_train_mode_and_not_in_eval(images):
    model = M.build_tile_model(
        "tiny_cnn",
        num_classes=[2],
        dropout=0.5,
        hidden_layers=1,
        hidden_layer_width=32,
        rngs=nnx.Rngs(0),
    )
    model.backbone.eval()  # isolate dropout from batch statistics
    a = model(images, rngs=nnx.Rngs(dropout=1))[0]
    b = model(images, rngs=nnx.Rngs(dropout=2))[0]
    c = model(images, rngs=nnx.Rngs(dropout=1))[0]
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, c)  # seeded: the same key gives the same masks
    model.eval()
    d = model(images, rngs=nnx.Rngs(dropout=1))[0]
    e = model(images, rngs=nnx.Rngs(dropout=2))[0]
    np.testing.assert_array_equal(d, e)


def test_mc_dropout_samples_with_batchnorm_frozen(images):
    model = M.build_tile_model("tiny_cnn", num_classes=[2], dropout=0.5, rngs=nnx.Rngs(0))
    model.mc_dropout()
    assert model.backbone.bn.use_running_average and not model.dropout.deterministic
    a = model(images, rngs=nnx.Rngs(dropout=1))[0]
    b = model(images, rngs=nnx.Rngs(dropout=2))[0]
    assert not np.allclose(a, b)
    mean_before = np.asarray(model.backbone.bn.mean[...])
    model(images * 5.0, rngs=nnx.Rngs(dropout=1))
    np.testing.assert_array_equal(np.asarray(model.backbone.bn.mean[...]), mean_before)


def test_bfloat16_compute_keeps_float32_params(images):
    model = M.build_tile_model("tiny_cnn", num_classes=[2], dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    assert {x.dtype for x in jax.tree.leaves(nnx.state(model, nnx.Param))} == {np.dtype("float32")}
    assert model.backbone(images).dtype == jnp.bfloat16
    assert model(images)[0].dtype == jnp.float32


def test_include_top_keeps_the_backbone_pooling():
    top = M.build_tile_model("tiny_cnn", num_classes=[2], pooling="max", rngs=nnx.Rngs(0))
    assert top.backbone.pooling == "avg"  # Slideflow/Keras include_top: average pooling
    no_top = M.build_tile_model(
        "tiny_cnn", num_classes=[2], pooling="max", include_top=False, rngs=nnx.Rngs(0)
    )
    assert no_top.backbone.pooling == "max"


def flat_true(mask) -> set[tuple]:
    return {tuple(p) for p, v in nnx.to_flat_state(mask) if v}


def test_trainable_layers_head_and_kernel_masks():
    model = M.build_tile_model(
        "tiny_cnn", num_classes=[2, 1], hidden_layers=1, hidden_layer_width=4, rngs=nnx.Rngs(0)
    )
    head = {
        ("hidden", 0, "kernel"),
        ("hidden", 0, "bias"),
        ("heads", 0, "kernel"),
        ("heads", 0, "bias"),
        ("heads", 1, "kernel"),
        ("heads", 1, "bias"),
    }
    everything = flat_true(M.param_mask(model, M.trainable_filter(model, 0)))
    assert len(everything) == len(nnx.to_flat_state(nnx.state(model, nnx.Param))) == 10
    assert flat_true(M.param_mask(model, M.head_filter(model))) == head
    last = flat_true(M.param_mask(model, M.trainable_filter(model, 1)))
    assert last == head | {("backbone", "bn", "scale"), ("backbone", "bn", "bias")}
    assert flat_true(M.param_mask(model, M.kernel_filter(model, "backbone"))) == {
        ("backbone", "conv", "kernel")
    }
    assert flat_true(M.param_mask(model, M.kernel_filter(model, "head"))) == {
        ("hidden", 0, "kernel"),
        ("heads", 0, "kernel"),
        ("heads", 1, "kernel"),
    }
    with pytest.raises(ValueError, match="trainable_layers=3 but the backbone has 2 layers"):
        M.trainable_filter(model, 3)


def test_trainable_layers_count_resnet_blocks():
    model = M.TileModel(abstract("resnet50"), num_classes=[2], rngs=nnx.Rngs(0))
    layers = M.backbone_layers(model)
    assert len(layers) == 2 + 3 + 4 + 6 + 3 and layers[-1] == ("backbone", "layer4", 2)
    top = flat_true(M.param_mask(model, M.trainable_filter(model, 1)))
    assert {p[:3] for p in top if p[0] == "backbone"} == {("backbone", "layer4", 2)}


def test_registry_errors():
    with pytest.raises(KeyError, match="no tile model named 'resnet5'.*resnet50.*xception"):
        M.get("resnet5")
    with pytest.raises(KeyError, match="no extractor model named 'resnet50'.*resnet50_trunc"):
        M.get("resnet50", "extractor")
    with pytest.raises(ValueError, match="unknown model kind 'tiles'"):
        M.names("tiles")
    with pytest.raises(KeyError, match="no tile model named 'uni'"):
        M.build_tile_model("uni", num_classes=[2], rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="num_classes needs one entry >= 1"):
        M.build_tile_model("tiny_cnn", num_classes=[], rngs=nnx.Rngs(0))
    with pytest.raises(TypeError, match="no integer attribute num_features"):
        M.TileModel(nnx.Linear(2, 2, rngs=nnx.Rngs(0)), num_classes=[2], rngs=nnx.Rngs(0))


def test_masks_freeze_the_backbone_in_the_shared_train_step(images):
    """`param_mask` plugs into the training core: a head-only optimizer (toplayer_epochs)
    changes the head and no backbone parameter."""
    import optax

    from jaxwsi.train.optim import frozen_except, masked_penalty
    from jaxwsi.train.state import TrainState
    from jaxwsi.train.step import train_step

    model = M.build_tile_model("tiny_cnn", num_classes=[2], dropout=0.5, rngs=nnx.Rngs(0))
    l2 = masked_penalty(0.0, 1e-3, M.param_mask(model, M.kernel_filter(model)))
    head_only = frozen_except(optax.adam(1e-2), M.param_mask(model, M.head_filter(model)))
    state = TrainState.create(model, optax.chain(l2, head_only), seed=0)

    def loss_fn(m, batch, rng):
        (logits,) = m(batch["image"], rngs=nnx.Rngs(dropout=rng))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["label"]).mean()
        return loss, {}

    batch = {"image": images, "label": np.array([0, 1])}
    new, _ = jax.jit(lambda s, b: train_step(loss_fn, s, b))(state, batch)
    changed = jax.tree.map(lambda a, b: bool(np.any(a != b)), state.params, new.params)
    moved = {p for p, v in nnx.to_flat_state(changed) if v.get_value()}
    assert moved == {("heads", 0, "kernel"), ("heads", 0, "bias")}
