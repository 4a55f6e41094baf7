"""jaxwsi's Xception against the reference implementation, ``keras.applications.Xception``
(Slideflow's default model), on Keras' JAX backend: every Keras weight (random, seeded) is put
into the Flax model by layer name and both must give the same pooled features in inference."""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported; the test extra installs keras

import jax
import jax.numpy as jnp
import keras
import numpy as np
from flax import nnx

import jaxwsi.models as M

SIZE = 71  # Keras' smallest input for Xception


def random_keras_xception(rng: np.random.Generator) -> keras.Model:
    model = keras.applications.Xception(
        weights=None, include_top=False, pooling="avg", input_shape=(SIZE, SIZE, 3)
    )
    values = []
    for w in model.weights:
        shape = tuple(w.shape)
        if "moving_variance" in w.path or "gamma" in w.path:
            v = rng.uniform(0.5, 1.5, shape)
        elif "kernel" in w.path:
            fan_in = np.prod(shape[:2]) if "depthwise" in w.path else np.prod(shape[:-1])
            v = rng.normal(0, (1.0 / fan_in) ** 0.5, shape)
        else:  # beta, moving_mean
            v = rng.normal(0, 0.1, shape)
        values.append(v.astype(np.float32))
    model.set_weights(values)
    return model


def port(km: keras.Model) -> nnx.Module:
    """The Keras weights in jaxwsi's Xception (built abstract: nothing randomly initialized)."""
    layers = {layer.name: layer for layer in km.layers}
    # The four strided 1×1 shortcut convolutions and their BatchNorms carry Keras' auto names.
    shortcut_convs = [
        k for k in km.layers if type(k).__name__ == "Conv2D" and "block" not in k.name
    ]
    shortcut_bns = [
        k for k in km.layers if type(k).__name__ == "BatchNormalization" and "block" not in k.name
    ]
    m = nnx.eval_shape(lambda: M.get("xception")(rngs=nnx.Rngs(0)))

    def put(var, value):
        var.set_value(jnp.asarray(np.asarray(value), jnp.float32))

    def put_bn(bn, layer):
        for var, value in zip((bn.scale, bn.bias, bn.mean, bn.var), layer.weights, strict=True):
            put(var, value)

    def put_sep(unit, name):
        depthwise, pointwise = (np.asarray(w) for w in layers[name].weights)
        put(unit.conv.depthwise.kernel, depthwise.transpose(0, 1, 3, 2))  # (k,k,C,1)→(k,k,1,C)
        put(unit.conv.pointwise.kernel, pointwise)
        put_bn(unit.bn, layers[name + "_bn"])

    put(m.conv1.kernel, layers["block1_conv1"].weights[0])
    put_bn(m.bn1, layers["block1_conv1_bn"])
    put(m.conv2.kernel, layers["block1_conv2"].weights[0])
    put_bn(m.bn2, layers["block1_conv2_bn"])
    for i, (down, b) in enumerate(zip([*m.entry, m.exit_block], [2, 3, 4, 13], strict=True)):
        put(down.shortcut_conv.kernel, shortcut_convs[i].weights[0])
        put_bn(down.shortcut_bn, shortcut_bns[i])
        put_sep(down.sep1, f"block{b}_sepconv1")
        put_sep(down.sep2, f"block{b}_sepconv2")
    for i, block in enumerate(m.middle):
        for j, unit in enumerate(block.seps):
            put_sep(unit, f"block{5 + i}_sepconv{j + 1}")
    put_sep(m.exit_sep1, "block14_sepconv1")
    put_sep(m.exit_sep2, "block14_sepconv2")
    return m


def test_xception_equals_keras_xception():
    rng = np.random.default_rng(0)
    km = random_keras_xception(rng)
    model = port(km)
    unset = [
        p
        for p, v in nnx.to_flat_state(nnx.state(model))
        if isinstance(v[...], jax.ShapeDtypeStruct)
    ]
    assert not unset  # every parameter and statistic came from Keras
    assert M.param_count(model) == km.count_params() - sum(
        int(np.prod(w.shape)) for w in km.non_trainable_weights
    )
    model.eval()
    x = rng.uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    want = np.asarray(km(x, training=False))
    graphdef, state = nnx.split(model)
    got = np.asarray(jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))(state, x))
    assert got.shape == want.shape == (2, 2048)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
