"""A user-defined Flax NNX backbone, registered by name, built and trained like the built-in ones.

    .venv/bin/python experiments/custom_architecture.py

Any ``nnx.Module`` whose ``__call__(images [B, H, W, 3]) -> [B, num_features]`` works: register
its factory with `jaxwsi.models.register` and every place that takes a model name
(``ModelParams(model="my_cnn")``, `build_tile_model`) can use it. ``block_paths`` (optional)
lists its layers from input to output, which is what ``trainable_layers`` counts.
"""

import io
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import nnx
from PIL import Image

import jaxwsi
from jaxwsi.io import TFRecordWriter


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
# one hidden layer, dropout; one jitted forward pass in eval mode over the split state.
model = jaxwsi.models.build_tile_model(
    "my_cnn",
    num_classes=[3, 1],
    hidden_layers=1,
    hidden_layer_width=64,
    dropout=0.2,
    rngs=nnx.Rngs(0),
)
model.eval()
graphdef, state = nnx.split(model)
predict = jax.jit(lambda state, x: jax.nn.softmax(nnx.merge(graphdef, state)(x)[0]))
probs = predict(state, np.zeros((4, 64, 64, 3), np.float32))
print(
    f"my_cnn: {jaxwsi.models.param_count(model):,} parameters, outcome 1 probabilities "
    f"{probs.shape}; registered tile models: {', '.join(jaxwsi.models.names('tile'))}"
)

# Train it by name with the tile trainer on a tiny synthetic cohort: 8 slides of 16 tiles,
# class 0 pink with horizontal stripes, class 1 purple with vertical stripes.
root = Path(tempfile.mkdtemp(prefix="jaxwsi_custom_architecture_"))
(root / "tfrecords").mkdir()
rng = np.random.default_rng(0)
rows = []
for i in range(8):
    label, slide = i % 2, f"slide{i}"
    with TFRecordWriter(root / "tfrecords" / f"{slide}.tfrecords") as writer:
        for t in range(16):
            base = np.array([[220, 150, 180], [120, 90, 180]][label], np.float32)
            stripes = np.arange(32) // 4 % 2 * 40.0
            pattern = stripes[:, None] if label == 0 else stripes[None, :]
            tile = np.clip(base + pattern[..., None] + rng.normal(0, 25, (32, 32, 3)), 0, 255)
            jpeg = io.BytesIO()
            Image.fromarray(tile.astype(np.uint8)).save(jpeg, format="JPEG")
            writer.write(
                {"image_raw": jpeg.getvalue(), "slide": slide, "loc_x": 32 * t, "loc_y": 0}
            )
    rows.append({"patient": f"pt{i}", "slide": slide, "tissue": ["stroma", "tumour"][label]})
pd.DataFrame(rows).to_csv(root / "annotations.csv", index=False)
dataset = jaxwsi.Dataset(root / "annotations.csv", root / "tfrecords", tile_px=32, tile_um=64)
train = dataset.with_slides([f"slide{i}" for i in range(6)])
val = dataset.with_slides(["slide6", "slide7"])

hp = jaxwsi.ModelParams(
    tile_px=32,
    tile_um=64,
    model="my_cnn",
    epochs=[2],
    batch_size=16,
    learning_rate=1e-2,
    augment="xy",
)
trainer = jaxwsi.train.build_trainer(hp, outdir=root / "model", labels="tissue")
results = trainer.train(train, val)
print(
    f"validation after epoch 2: tile AUROC {results['epoch2']['tile_auc']['tissue']}, "
    f"slide AUROC {results['epoch2']['slide_auc']['tissue']}; model folder {root / 'model'}"
)
