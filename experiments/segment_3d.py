"""3D segmentation end to end: ``unet_xy`` (valid convolutions, xy-only pooling, deep
supervision) trained on the small 3D nuclei pair in ``tests/fixtures/segmentation`` (31×61×57,
stardist's synthetic nuclei) in the Allen Cell folder layout (``img_000.tif`` /
``img_000_GT.tif``), then a held-out part of the volume predicted with 3D sliding windows.

The volume is cut in y: rows 0-29 train, rows 30-60 are predicted (never seen). The network is
``unet_xy`` at an eighth of the Allen width (``features: 4``: 4→8→16→32, 64 bottleneck) on
the smallest z of the Allen rule plus 3, so that it trains on 2 shared CPU cores in minutes;
everything else is the Allen architecture.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/segment_3d.py [--out runs/segment_3d]

Prints and saves (results.json) the foreground Dice of the held-out part and the times.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import tifffile
from sklearn.metrics import f1_score

from jaxwsi.atomic import write_bytes_atomic
from jaxwsi.segment import config_from_dict
from jaxwsi.segment.saved import load_model
from jaxwsi.segment.trainer import train

FIXTURES = Path(__file__).parent.parent / "tests" / "fixtures" / "segmentation"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs/segment_3d", help="output folder (replaced)")
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()

out = Path(args.out)
if out.exists():
    shutil.rmtree(out)
volume = tifffile.imread(FIXTURES / "img3d.tif")
mask = tifffile.imread(FIXTURES / "mask3d.tif")
data = out / "data"
data.mkdir(parents=True)
tifffile.imwrite(data / "img_000.tif", volume[:, :30])
tifffile.imwrite(data / "img_000_GT.tif", mask[:, :30])

config = config_from_dict(
    {
        "model": {"name": "unet_xy", "features": 4},
        "nclass": [2, 2, 2],
        "size_in": [32, 100, 100],
        "size_out": [4, 12, 12],
        "checkpoint_dir": str(out / "run"),
        "loader": {
            "datafolder": str(data),
            "batch_size": 4,
            "PatchPerBuffer": 8,
            "epoch_shuffle": 5,
        },
        "loss": {"name": "aux", "loss_weight": [1.0, 0.5, 0.25]},
        "learning_rate": 0.003,
        "epochs": args.epochs,
        "save_every_n_epoch": 5,
        "load_at_end": "last",
        "validation": {"preview": 2},
        "prediction": {"tile": [59, 140, 140], "overlap": 0.25},
    },
    "segment_3d",
)
start = time.perf_counter()
result = train(config)
trained = time.perf_counter()
probability = load_model(out / "run").predict(volume[:, 30:])
done = time.perf_counter()
truth = mask[:, 30:] > 0
assert probability.shape == truth.shape
dice = f1_score(truth.ravel(), (probability > 0.5).ravel())
results = {
    "dice_held_out": round(float(dice), 4),
    "train_seconds": round(trained - start, 1),
    "predict_seconds": round(done - trained, 1),
    "epochs": result.epochs_done,
    "patches_trained": result.epochs_done * config.loader.PatchPerBuffer,
    "size_in": result.size_in,
    "size_out": result.size_out,
}
write_bytes_atomic(out / "results.json", json.dumps(results, indent=2).encode())
print(json.dumps(results))
