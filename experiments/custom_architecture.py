"""A user-defined Flax NNX backbone, registered by name and built like the built-in models.

    .venv/bin/python experiments/custom_architecture.py

Any ``nnx.Module`` whose ``__call__(images [B, H, W, 3]) -> [B, num_features]`` works: register
its factory with `jaxwsi.models.register` and every place that takes a model name
(``ModelParams(model="my_cnn")``, `build_tile_model`) can use it. ``block_paths`` (optional)
lists its layers from input to output, which is what ``trainable_layers`` counts.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import jaxwsi


class MyCNN(nnx.Module):
    """Two strided conv → BatchNorm → ReLU stages, then global pooling: 32 features."""

    def __init__(self, *, rngs, dtype=jnp.float32, param_dtype=jnp.float32, pooling="avg"):
        def conv(cin, cout):
            return nnx.Conv(
                cin,
                cout,
                (3, 3),
                strides=2,
                use_bias=False,
                dtype=dtype,
                param_dtype=param_dtype,
                rngs=rngs,
            )

        def bn(c):
            return nnx.BatchNorm(c, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

        self.conv1, self.bn1 = conv(3, 16), bn(16)
        self.conv2, self.bn2 = conv(16, 32), bn(32)
        self.pooling = pooling
        self.dtype = dtype
        self.num_features = 32
        self.block_paths = (("conv1",), ("bn1",), ("conv2",), ("bn2",))

    def __call__(self, x):
        x = nnx.relu(self.bn1(self.conv1(x.astype(self.dtype))))
        x = nnx.relu(self.bn2(self.conv2(x)))
        return x.mean(axis=(1, 2)) if self.pooling == "avg" else x.max(axis=(1, 2))


@jaxwsi.models.register("my_cnn")
def my_cnn(**kwargs):
    return MyCNN(**kwargs)


# Build it by name with Slideflow's head: two outcomes (3 classes, 1 regression value),
# one hidden layer, dropout.
model = jaxwsi.models.build_tile_model(
    "my_cnn",
    num_classes=[3, 1],
    hidden_layers=1,
    hidden_layer_width=64,
    dropout=0.2,
    rngs=nnx.Rngs(0),
)
print(
    f"my_cnn: {jaxwsi.models.param_count(model):,} parameters; "
    f"registered tile models: {', '.join(jaxwsi.models.names('tile'))}"
)

# One jitted forward pass in eval mode over the split state (the way the trainer runs it).
model.eval()
graphdef, state = nnx.split(model)
predict = jax.jit(lambda state, x: jax.nn.softmax(nnx.merge(graphdef, state)(x)[0]))
images = np.random.default_rng(0).uniform(-1, 1, size=(4, 64, 64, 3)).astype(np.float32)
probs = predict(state, images)
print(
    f"class probabilities of outcome 1, shape {probs.shape}, rows sum to "
    f"{np.asarray(probs.sum(axis=1)).round(4).tolist()}"
)
