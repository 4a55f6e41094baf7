"""Pretrained weights from local files: torchvision / timm state dicts written by the test with
`safetensors.numpy.save_file`, loaded into the Flax models (layout changes checked against
numpy re-computations from the torch-layout tensors), and every kind of mismatch."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import save_file

import jaxwsi.models as M
from jaxwsi.models.vit import VisionTransformer

RENAMES = {"kernel": "weight", "scale": "weight", "mean": "running_mean", "var": "running_var"}


def abstract(factory, **kwargs):
    """A model's structure without allocating it (loading a file makes it concrete)."""
    return nnx.eval_shape(lambda: factory(rngs=nnx.Rngs(0), **kwargs))


def torch_state_dict(model: nnx.Module, seed: int) -> dict[str, np.ndarray]:
    """Seeded random tensors for every parameter and BatchNorm statistic of ``model``, keyed and
    shaped as torch stores them (OIHW convolutions, (out, in) linears)."""
    rng = np.random.default_rng(seed)
    out = {}
    state = nnx.state(model, nnx.Any(nnx.Param, nnx.BatchStat))
    for path, var in nnx.to_flat_state(state):
        *parents, name = (str(p) for p in path)
        shape = tuple(var.shape)
        if name == "kernel" and len(shape) == 4:
            shape = (shape[3], shape[2], shape[0], shape[1])
        elif name == "kernel" and len(shape) == 2:
            shape = shape[::-1]
        value = rng.normal(0, 0.1, size=shape).astype(np.float32)
        if name == "var":
            value = np.abs(value) + 0.5
        out[".".join([*parents, RENAMES.get(name, name)])] = value
        if name == "var":
            out[".".join([*parents, "num_batches_tracked"])] = np.array(7, np.int64)
    return out


@pytest.fixture(scope="module")
def resnet18_file(tmp_path_factory):
    state = torch_state_dict(abstract(M.get("resnet18")), seed=1)
    rng = np.random.default_rng(2)
    state["fc.weight"] = rng.normal(size=(1000, 512)).astype(np.float32)
    state["fc.bias"] = np.zeros(1000, np.float32)
    path = tmp_path_factory.mktemp("weights") / "resnet18.safetensors"
    save_file(state, str(path))
    return path, state


def test_resnet18_file_has_torchvision_layout(resnet18_file):
    _, state = resnet18_file
    # torchvision resnet18().state_dict(): 20 convs, 20 BatchNorms × 5 tensors, fc weight+bias.
    assert len(state) == 122
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)
    assert state["layer2.0.downsample.1.running_var"].shape == (128,)
    assert state["layer4.1.bn2.weight"].shape == (512,)


@pytest.fixture(scope="module")
def loaded_resnet18(resnet18_file):
    path, _ = resnet18_file
    return M.load_weights(abstract(M.get("resnet18")), path)


def test_conv_weights_transposed_oihw_to_hwio(loaded_resnet18, resnet18_file):
    _, state = resnet18_file
    w = state["conv1.weight"]  # [out, in, kh, kw]
    x = np.random.default_rng(3).normal(size=(1, 12, 12, 3)).astype(np.float32)
    got = np.asarray(loaded_resnet18.conv1(x))
    # torch Conv2d(3, 64, 7, stride 2, padding 3) computed directly from the OIHW tensor.
    xp = np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)))
    want = np.zeros((1, 6, 6, 64), np.float32)
    for kh in range(7):
        for kw in range(7):
            patch = xp[:, kh : kh + 12 : 2, kw : kw + 12 : 2, :]  # [1, 6, 6, in]
            want += np.einsum("bhwc,oc->bhwo", patch, w[:, :, kh, kw])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_batchnorm_running_stats_land_in_mean_var(loaded_resnet18, resnet18_file):
    _, state = resnet18_file
    bn = loaded_resnet18.layer2[0].downsample[1]
    bn.eval()
    x = np.random.default_rng(4).normal(size=(2, 3, 3, 128)).astype(np.float32)
    p = "layer2.0.downsample.1."
    want = (x - state[p + "running_mean"]) / np.sqrt(state[p + "running_var"] + 1e-5)
    want = want * state[p + "weight"] + state[p + "bias"]
    np.testing.assert_allclose(np.asarray(bn(x)), want, rtol=1e-4, atol=1e-4)


def test_loaded_model_runs_and_every_tensor_is_used(loaded_resnet18, resnet18_file):
    _, state = resnet18_file
    loaded = nnx.to_flat_state(nnx.state(loaded_resnet18, nnx.Any(nnx.Param, nnx.BatchStat)))
    assert len(loaded) == 122 - 20 - 2  # all but num_batches_tracked and the classifier fc
    loaded_resnet18.eval()
    y = loaded_resnet18(np.zeros((1, 64, 64, 3), np.float32))
    assert y.shape == (1, 512) and np.isfinite(np.asarray(y)).all()


def test_tile_model_pretrain_goes_into_the_backbone(resnet18_file):
    path, state = resnet18_file
    model = M.build_tile_model("resnet18", num_classes=[2], pretrain=path, rngs=nnx.Rngs(0))
    kernel = np.asarray(model.backbone.layer3[1].conv2.kernel[...])
    np.testing.assert_array_equal(kernel, state["layer3.1.conv2.weight"].transpose(2, 3, 1, 0))


def test_missing_extra_and_mismatched_tensors_are_named(resnet18_file):
    _, state = resnet18_file
    bad = dict(state)
    del bad["layer3.0.conv1.weight"]
    bad["layer5.0.conv1.weight"] = np.zeros((3, 3), np.float32)
    bad["layer1.0.bn1.running_mean"] = np.zeros(32, np.float32)
    with pytest.raises(M.WeightsError) as err:
        M.load_state_dict(abstract(M.get("resnet18")), bad, source="bad.safetensors")
    msg = str(err.value)
    assert "bad.safetensors does not fit ResNet" in msg
    assert "missing from the file (1): layer3.0.conv1.weight" in msg
    assert "extra in the file (1): layer5.0.conv1.weight" in msg
    assert "layer1.0.bn1.running_mean: file (32,), model (64,)" in msg
    assert "pretrain=None" in msg


def test_prefixed_keys_get_a_hint(resnet18_file):
    _, state = resnet18_file
    prefixed = {f"module.{k}": v for k, v in state.items()}
    with pytest.raises(M.WeightsError, match="strip it"):
        M.load_state_dict(abstract(M.get("resnet18")), prefixed)


def test_truncated_resnet50_takes_a_full_resnet50_file():
    state = torch_state_dict(abstract(M.get("resnet50")), seed=5)
    state["fc.weight"] = np.zeros((1000, 2048), np.float32)
    state["fc.bias"] = np.zeros(1000, np.float32)
    model = abstract(M.get("resnet50_trunc", "extractor"))
    M.load_state_dict(model, state)
    np.testing.assert_array_equal(
        np.asarray(model.layer3[5].bn3.var[...]), state["layer3.5.bn3.running_var"]
    )
    assert model.num_features == 1024 and not hasattr(model, "layer4")


@pytest.mark.parametrize(
    ("name", "known"),
    [
        # torchvision shapes: the t=1 block's depthwise conv, an expansion conv, the head conv.
        (
            "mobilenet_v2",
            {
                "features.1.conv.0.0.weight": (32, 1, 3, 3),
                "features.2.conv.0.0.weight": (96, 16, 1, 1),
                "features.17.conv.3.running_var": (320,),
                "features.18.0.weight": (1280, 320, 1, 1),
            },
        ),
        (
            "efficientnet_b0",
            {
                "features.1.0.block.0.0.weight": (32, 1, 3, 3),
                "features.1.0.block.1.fc1.weight": (8, 32, 1, 1),
                "features.6.3.block.3.1.running_mean": (192,),
                "features.8.0.weight": (1280, 320, 1, 1),
            },
        ),
    ],
)
def test_torchvision_mobilenet_and_efficientnet_load(name, known):
    state = torch_state_dict(abstract(M.get(name)), seed=10)
    for key, shape in known.items():
        assert state[key].shape == shape
    state["classifier.1.weight"] = np.zeros((1000, 1280), np.float32)
    state["classifier.1.bias"] = np.zeros(1000, np.float32)
    model = abstract(M.get(name))
    M.load_state_dict(model, state)
    conv = model.features[18][0] if name == "mobilenet_v2" else model.features[8][0]
    want = state["features.18.0.weight" if name == "mobilenet_v2" else "features.8.0.weight"]
    np.testing.assert_array_equal(np.asarray(conv.kernel[...]), want.transpose(2, 3, 1, 0))
    model.eval()
    graphdef, params = nnx.split(model)
    y = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))(
        params, np.zeros((1, 64, 64, 3), np.float32)
    )
    assert y.shape == (1, 1280) and np.isfinite(np.asarray(y)).all()


def test_timm_vit_linear_transpose_and_pos_embed_resize():
    model = abstract(VisionTransformer, dim=32, depth=2, heads=2, img_size=64)  # 4×4 patches
    state = torch_state_dict(abstract(VisionTransformer, dim=32, depth=2, heads=2), seed=6)
    assert state["pos_embed"].shape == (1, 197, 32)  # a 224-px timm file: 14×14 + cls
    assert state["blocks.1.attn.qkv.weight"].shape == (96, 32)
    state["pos_embed"][:, 1:] = np.linspace(-1, 1, 32, dtype=np.float32)  # constant over grid
    state["head.weight"] = np.zeros((1000, 32), np.float32)  # timm classifier: not used
    M.load_state_dict(model, state)
    pos = np.asarray(model.pos_embed[...])
    assert pos.shape == (1, 17, 32)
    np.testing.assert_array_equal(pos[0, 0], state["pos_embed"][0, 0])  # class token kept
    np.testing.assert_allclose(pos[0, 1:], state["pos_embed"][0, 1:17], atol=1e-5)
    x = np.random.default_rng(7).normal(size=(2, 5, 32)).astype(np.float32)
    qkv = model.blocks[1].attn.qkv
    want = x @ state["blocks.1.attn.qkv.weight"].T + state["blocks.1.attn.qkv.bias"]
    np.testing.assert_allclose(np.asarray(qkv(x)), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(model.norm.scale[...]), state["norm.weight"])


def test_layer_scale_mismatch_says_what_to_pass():
    uni_like = torch_state_dict(
        abstract(VisionTransformer, dim=32, depth=1, heads=2, layer_scale=1e-5), seed=8
    )
    assert uni_like["blocks.0.ls1.gamma"].shape == (32,)
    with pytest.raises(M.WeightsError, match="layer_scale=1e-5"):
        M.load_state_dict(abstract(VisionTransformer, dim=32, depth=1, heads=2), uni_like)


def test_imagenet_missing_file_and_wrong_format(tmp_path):
    model = abstract(M.get("resnet18"))
    with pytest.raises(M.WeightsError, match="cannot download.*pretrain=None"):
        M.load_weights(model, "imagenet")
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        M.load_weights(model, tmp_path / "nowhere.safetensors")
    pickle = tmp_path / "resnet18.pth"
    pickle.write_bytes(b"not a safetensors file")
    with pytest.raises(M.WeightsError, match="never a pickle"):
        M.load_weights(model, pickle)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 16)
    with pytest.raises(M.WeightsError, match="broken.safetensors: not a readable"):
        M.load_weights(model, broken)
    with pytest.raises(M.WeightsError, match="imagenet"):
        M.build_tile_model("resnet18", num_classes=[2], pretrain="imagenet", rngs=nnx.Rngs(0))


def test_architecture_without_torch_layout_is_refused(resnet18_file):
    path, _ = resnet18_file
    with pytest.raises(M.WeightsError, match="Xception has no torch-layout weights mapping"):
        M.load_weights(abstract(M.get("xception")), path)


@M.register("tiny_vit", kind="extractor")
def tiny_vit(*, rngs, dtype=None, param_dtype=None, pooling="cls", **options):
    model = VisionTransformer(dim=32, depth=1, heads=2, img_size=32, rngs=rngs, pooling=pooling)
    model.preprocessing = M.Preprocessing(size=32)
    return model


def test_build_extractor_from_a_file_without_random_init(tmp_path):
    state = torch_state_dict(abstract(tiny_vit), seed=9)
    path = tmp_path / "tiny_vit.safetensors"
    save_file(state, str(path))
    model = M.build_extractor("tiny_vit", weights=path)
    np.testing.assert_array_equal(
        np.asarray(model.blocks[0].mlp.fc2.kernel[...]), state["blocks.0.mlp.fc2.weight"].T
    )
    assert model.preprocessing.size == 32 and model.num_features == 32
    y = model(np.zeros((2, 32, 32, 3), np.float32))
    assert y.shape == (2, 32)
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        M.build_extractor("tiny_vit", weights=tmp_path / "missing.safetensors")
    with pytest.raises(KeyError, match="no extractor model named 'uni'"):
        M.build_extractor("uni", weights=path)
