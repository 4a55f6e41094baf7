"""Feature-extraction and MIL-training speed.

1. Tiles/s end to end from TFRecords (native loader → JPEG decode → device preprocessing →
   jit-compiled extractor → bag written), for ``resnet50_trunc`` at 224 px and ``vit_b16``,
   random weights (the speed does not depend on them), float32 on CPU / bfloat16 on GPU. Each
   extractor first embeds one slide to compile (not timed), then the timed slides.
2. MIL training seconds per epoch (``attention_mil``, Slideflow's defaults: bag_size 512,
   batch 32 as in its tutorial 8, whose log shows about 1 s per epoch on a GPU), on synthetic
   1024-d bags; the first epoch compiles and is reported separately.

    .venv/bin/python experiments/bench_features.py [--tiles 64] [--bags 128] [--skip-vit]
        [--only-mil]
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from PIL import Image

from jaxwsi.dataset import Dataset
from jaxwsi.io import TFRecordWriter
from jaxwsi.mil import extract_features, feature_extractor, mil_config, train_mil, write_bag

logging.getLogger("jaxwsi").setLevel(logging.ERROR)
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--tiles", type=int, default=64, help="tiles per timed slide")
parser.add_argument("--slides", type=int, default=2, help="timed slides per extractor")
parser.add_argument("--bags", type=int, default=128, help="training bags for the MIL epoch")
parser.add_argument("--epochs", type=int, default=3, help="MIL epochs (the first compiles)")
parser.add_argument("--skip-vit", action="store_true")
parser.add_argument("--only-mil", action="store_true", help="skip the extraction benchmark")
args = parser.parse_args()

root = Path(tempfile.mkdtemp(prefix="bench_features_"))
gpu = jax.default_backend() == "gpu"
dtype = "bfloat16" if gpu else "float32"
print(f"backend {jax.default_backend()}, {jax.device_count()} device(s), dtype {dtype}")

# --- TFRecords of 224-px JPEG tiles (smooth noise, like tissue in size and entropy) ---
rng = np.random.default_rng(0)
(root / "tfrecords").mkdir()
rows = []
for s in range(args.slides + 1):
    slide = f"slide{s}"
    count = 8 if s == 0 else args.tiles  # slide0: compile only
    with TFRecordWriter(root / "tfrecords" / f"{slide}.tfrecords") as writer:
        for i in range(count):
            small = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((224, 224), Image.BILINEAR)
            import io

            buf = io.BytesIO()
            image.save(buf, format="JPEG", quality=95)
            writer.write({"image_raw": buf.getvalue(), "slide": slide, "loc_x": i, "loc_y": 0})
    rows.append({"patient": slide, "slide": slide, "label": s % 2})
pd.DataFrame(rows).to_csv(root / "annotations.csv", index=False)
dataset = Dataset(root / "annotations.csv", root / "tfrecords", tile_px=224, tile_um=112)

results = []
extractors = [] if args.only_mil else ["resnet50_trunc"] + ([] if args.skip_vit else ["vit_b16"])
for name in extractors:
    fx = feature_extractor(name, weights=None, dtype=dtype)
    warm = dataset.with_slides(["slide0"])
    t0 = time.perf_counter()
    extract_features(fx, warm, root / f"bags_{name}", batch_size=64, min_tiles=1, progress=False)
    compile_s = time.perf_counter() - t0
    timed = dataset.with_slides([f"slide{s}" for s in range(1, args.slides + 1)])
    t0 = time.perf_counter()
    extract_features(fx, timed, root / f"bags_{name}", batch_size=64, min_tiles=1, progress=False)
    seconds = time.perf_counter() - t0
    tiles = args.slides * args.tiles
    results.append((name, tiles / seconds, compile_s))
    print(
        f"{name}: {tiles / seconds:.1f} tiles/s ({tiles} tiles in {seconds:.1f} s; first "
        f"slide incl. compile {compile_s:.1f} s)",
        flush=True,
    )

# --- MIL seconds per epoch on synthetic bags ---
bag_rows = []
(root / "mil_tfrecords").mkdir()
for i in range(args.bags + 32):
    slide = f"b{i:04d}"
    n = int(rng.integers(300, 900))
    write_bag(
        root / "mil_bags" / f"{slide}.npz",
        rng.normal(size=(n, 1024)).astype(np.float32),
        np.zeros((n, 2), np.int64),
    )
    with TFRecordWriter(root / "mil_tfrecords" / f"{slide}.tfrecords") as writer:
        writer.write({"image_raw": b"\xff\xd8", "slide": slide, "loc_x": 0, "loc_y": 0})
    bag_rows.append({"patient": slide, "slide": slide, "label": i % 2})
pd.DataFrame(bag_rows).to_csv(root / "mil.csv", index=False)
mil_ds = Dataset(root / "mil.csv", root / "mil_tfrecords")
slides = mil_ds.slides()
config = mil_config("attention_mil", lr=1e-4, batch_size=32, epochs=args.epochs)
t0 = time.perf_counter()
train_mil(
    config,
    mil_ds.with_slides(slides[: args.bags]),
    mil_ds.with_slides(slides[args.bags :]),
    "label",
    root / "mil_bags",
    root / "mil_run",
    progress=False,
)
total = time.perf_counter() - t0
history = pd.read_csv(root / "mil_run" / "history.csv")
seconds = history["seconds"].to_numpy()
print(
    f"attention_mil: {args.bags} training bags (bag_size 512, batch 32), 32 validation bags: "
    f"epoch 1 (compiles) {seconds[0]:.2f} s, then {np.median(seconds[1:]):.2f} s/epoch "
    f"(median of {len(seconds) - 1}, training + validation); {total:.1f} s in all"
)
