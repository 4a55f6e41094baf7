"""Nuclei segmentation on real data: train on one half of an image, predict the other half.

The 2018 Data Science Bowl image in ``tests/fixtures/segmentation`` (512×512, 125 nuclei) is cut
into a left half (training, through ``jaxwsi segment train``) and a right half (never seen),
predicted with ``jaxwsi segment predict`` (overlapping 128² tiles, Gaussian blending). Prints
and saves the foreground Dice (scikit-learn's F1 of ``probability > 0.5`` vs ``mask > 0``) and
the wall time; the configuration is ``experiments/segment_nuclei.yaml``.

    JAX_PLATFORMS=cpu .venv/bin/python experiments/segment_nuclei.py [--out runs/segment_nuclei]
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import tifffile
import yaml
from sklearn.metrics import f1_score

from jaxwsi.atomic import write_bytes_atomic
from jaxwsi.cli import main

HERE = Path(__file__).parent
FIXTURES = HERE.parent / "tests" / "fixtures" / "segmentation"

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="runs/segment_nuclei", help="output folder (replaced)")
parser.add_argument("--epochs", type=int, help="override the configuration's epochs")
args = parser.parse_args()

out = Path(args.out)
if out.exists():
    shutil.rmtree(out)
image = tifffile.imread(FIXTURES / "img2d.tif")
mask = tifffile.imread(FIXTURES / "mask2d.tif")
half = image.shape[1] // 2
data = out / "data"
for folder in ("input", "output"):
    (data / folder).mkdir(parents=True)
tifffile.imwrite(data / "input" / "left.tif", image[:, :half])
tifffile.imwrite(data / "output" / "left.tif", mask[:, :half])
tifffile.imwrite(out / "right.tif", image[:, half:])

config = yaml.safe_load((HERE / "segment_nuclei.yaml").read_text())
config["loader"]["datafolder"] = str(data)
config["checkpoint_dir"] = str(out / "run")
if args.epochs:
    config["epochs"] = args.epochs
config_path = out / "config.yaml"
config_path.write_text(yaml.safe_dump(config, sort_keys=False))

start = time.perf_counter()
main(["segment", "train", str(config_path)])
trained = time.perf_counter()
main(["segment", "predict", str(out / "run"), str(out / "right.tif"), "--out", str(out / "pred")])
done = time.perf_counter()

probability = tifffile.imread(out / "pred" / "right.tif")
truth = mask[:, half:] > 0
assert probability.shape == truth.shape and probability.dtype == np.float32
dice = f1_score(truth.ravel(), (probability > 0.5).ravel())
results = {
    "dice_right_half": round(float(dice), 4),
    "train_seconds": round(trained - start, 1),
    "predict_seconds": round(done - trained, 1),
    "epochs": config["epochs"],
}
write_bytes_atomic(out / "results.json", json.dumps(results, indent=2).encode())
print(json.dumps(results))
