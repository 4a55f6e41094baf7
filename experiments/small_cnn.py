"""A small CNN registered as ``small_cnn``: the CPU-sized model of the main job and of the
experiment configs (``imports: [experiments/small_cnn.py]``), trained in seconds on 2 cores."""

import jax.numpy as jnp
from flax import nnx

import jaxwsi


class SmallCNN(nnx.Module):
    """Three strided 3×3 convolutions with ReLU and global pooling: 64 features."""

    def __init__(self, *, rngs, dtype=jnp.float32, param_dtype=jnp.float32, pooling="avg"):
        widths = (3, 16, 32, 64)
        self.convs = nnx.List(
            nnx.Conv(a, b, (3, 3), strides=2, dtype=dtype, param_dtype=param_dtype, rngs=rngs)
            for a, b in zip(widths, widths[1:], strict=False)
        )
        self.pooling, self.dtype, self.num_features = pooling, dtype, widths[-1]
        self.block_paths = tuple(("convs", str(i)) for i in range(len(self.convs)))

    def __call__(self, x):
        x = x.astype(self.dtype)
        for conv in self.convs:
            x = nnx.relu(conv(x))
        return x.mean(axis=(1, 2)) if self.pooling == "avg" else x.max(axis=(1, 2))


if "small_cnn" not in jaxwsi.models.names("tile"):
    jaxwsi.models.register("small_cnn")(lambda **kwargs: SmallCNN(**kwargs))
