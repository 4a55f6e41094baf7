"""The main job on built-in defaults: synthetic slides → tiles → 3-fold CV training → evaluation
→ heatmaps and reports, with a printed metrics table.

1. Writes seeded synthetic whole-slide images (pyramidal TIFFs; two tissue classes, two slides
   per patient).
2. Creates a project with an annotations table (patients, slides, a categorical outcome).
3. Extracts tiles with Otsu QC into TFRecords + Slideflow-compatible indexes, in parallel.
4. Trains a tile classifier with patient-level, stratified 3-fold cross-validation
   (`Project.train`: category-balanced sampling, a per-slide clip, validation at the last
   epoch), data-parallel over every visible device (every GPU when there are some). The model
   is ResNet-18 when there is a GPU; on a CPU it is the small CNN of experiments/small_cnn.py
   (`--model` takes any registered name), so the job stays within a few minutes on 2 cores.
5. Evaluates each fold's model on its validation slides (`Project.evaluate`) and checks the
   metrics equal the ones saved during training.
6. Draws heatmaps of the first fold's validation slides and writes report.html in every model
   folder (`Project.generate_heatmaps`).

Prints the metrics table and where the results are; exits non-zero if a check fails (a model
that did not learn the two classes: slide AUC < 0.9).

Run: bash experiments/run.sh [--outdir experiments/out/quickstart] [--slides 12] ...
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import jaxwsi
from jaxwsi.experiment.summary import metrics_table
from jaxwsi.testing import synthetic_slide

OUTCOME = "tissue"
MARKER = ".jaxwsi-quickstart"


def make_slides(slides_dir: Path, num_slides: int, seed: int) -> pd.DataFrame:
    """Writes ``num_slides`` synthetic slides of two tissue classes; returns their annotations."""
    slides_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(num_slides):
        name = f"synthetic_{i:02d}"
        tissue_class = i % 2
        synthetic_slide(
            slides_dir / f"{name}.tiff",
            width=2048,
            height=1536,
            mpp=0.5,
            tissue_class=tissue_class,
            tissue_fraction=0.5,
            seed=seed + i,
        )
        # Two slides per patient, both of the same class (patient-level splits keep them together).
        rows.append(
            {
                "patient": f"patient_{i // 4 * 2 + tissue_class:02d}",
                "slide": name,
                OUTCOME: ["stroma", "tumour"][tissue_class],
            }
        )
    return pd.DataFrame(rows)


SMALL_CNN = str(Path(__file__).resolve().parent / "small_cnn.py")  # registers "small_cnn"


def default_model() -> str:
    """ResNet-18 on GPUs, the small CNN on a CPU."""
    import jax

    return "resnet18" if jax.devices()[0].platform == "gpu" else "small_cnn"


def fresh_output_folder(outdir: Path) -> None:
    """Empties ``outdir`` for a new run: only a folder an earlier run made (it holds the marker
    file) or an empty one is reused, so a mistyped ``--outdir`` never deletes someone's data."""
    if outdir.exists():
        if not (outdir / MARKER).is_file() and any(outdir.iterdir()):
            raise SystemExit(f"{outdir} exists and was not made by the quickstart: pick another")
        shutil.rmtree(outdir)
    outdir.mkdir(parents=True)
    (outdir / MARKER).touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", default="experiments/out/quickstart", help="output folder")
    parser.add_argument("--slides", type=int, default=12, help="synthetic slides (multiple of 4)")
    parser.add_argument("--tile-px", type=int, default=64, help="tile side in pixels")
    parser.add_argument("--tile-um", type=int, default=128, help="tile side in micrometres")
    parser.add_argument(
        "--model",
        default=None,
        help="registered tile model (default: resnet18 on GPUs, else a small CNN)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="training epochs")
    parser.add_argument("--batch-size", type=int, default=32, help="global batch size")
    parser.add_argument("--clip", type=int, default=48, help="max tiles read per slide")
    parser.add_argument("--folds", type=int, default=3, help="cross-validation folds")
    parser.add_argument("--workers", type=int, default=2, help="extraction processes")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bars"
    )
    args = parser.parse_args(argv)

    outdir = Path(args.outdir)
    fresh_output_folder(outdir)
    problems: list[str] = []
    timings: dict[str, float] = {}
    started = time.perf_counter()

    annotations = make_slides(outdir / "slides", args.slides, args.seed)
    project = jaxwsi.create_project(
        outdir / "project", annotations=annotations, slides=outdir / "slides"
    )
    timings["synthetic slides"] = time.perf_counter() - started

    mark = time.perf_counter()
    report = project.extract_tiles(
        args.tile_px, args.tile_um, qc="otsu", num_workers=args.workers, progress=False
    )
    failed = report[report["error"].fillna("").astype(str) != ""]
    problems += [f"extraction failed for {s}" for s in failed["slide"]]
    timings["extraction"] = time.perf_counter() - mark

    mark = time.perf_counter()
    hp = jaxwsi.ModelParams(
        tile_px=args.tile_px,
        tile_um=args.tile_um,
        model=args.model or default_model(),
        epochs=[args.epochs],
        batch_size=args.batch_size,
        learning_rate=1e-3,
        augment="xyr",
        training_balance="category",
        pooling="avg",
        seed=args.seed,
    )
    results = project.train(
        OUTCOME,
        hp,
        val_strategy="k-fold",
        val_k_fold=args.folds,
        max_tiles=args.clip,
        imports=[SMALL_CNN],
        trainer_options={"progress": args.progress},
    )
    timings[f"training ({args.folds} folds)"] = time.perf_counter() - mark

    mark = time.perf_counter()
    for name, epochs in results.items():
        model_dir = project.models_dir / name
        manifest = pd.read_csv(model_dir / "slide_manifest.csv")
        validation = manifest.loc[manifest["dataset"] == "validation", "slide"].tolist()
        evaluated = project.evaluate(model_dir, OUTCOME, filters={"slide": validation})
        saved = epochs[max(epochs, key=lambda k: int(str(k).removeprefix("epoch")))]
        for key in ("tile_auc", "slide_auc", "patient_auc"):
            a, b = np.ravel(evaluated[key][OUTCOME]), np.ravel(saved[key][OUTCOME])
            if not np.allclose(a, b, atol=1e-5):
                problems.append(f"{name}: evaluate gives {key} {a}, training saved {b}")
        slide_auc = float(np.mean(saved["slide_auc"][OUTCOME]))
        if slide_auc < 0.9:
            problems.append(f"{name}: slide AUC {slide_auc:.3f} < 0.9 (did not learn)")
    timings["evaluation"] = time.perf_counter() - mark

    mark = time.perf_counter()
    heatmaps = []
    for index, name in enumerate(results):
        model_dir = project.models_dir / name
        if index == 0:
            manifest = pd.read_csv(model_dir / "slide_manifest.csv")
            validation = manifest.loc[manifest["dataset"] == "validation", "slide"].tolist()
            heatmaps = project.generate_heatmaps(
                model_dir, filters={"slide": validation}, progress=args.progress
            )
        else:
            project.write_report(model_dir)
    timings["heatmaps and reports"] = time.perf_counter() - mark
    total = time.perf_counter() - started
    (outdir / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")

    import jax

    print(f"jaxwsi quickstart -> {outdir}/")
    print(
        f"  {len(annotations)} synthetic slides, {int(report['num_tiles'].sum())} tiles at "
        f"{args.tile_px}px/{args.tile_um}um; {hp.model}, {args.folds}-fold CV, "
        f"{args.epochs} epochs on {jax.device_count()} {jax.devices()[0].platform} device(s)"
    )
    print(metrics_table(results).to_string(index=False))
    print(f"  models:      {project.models_dir}/ (params.json, predictions, checkpoints)")
    print(f"  results log: {project.root / 'results_log.csv'}")
    print(f"  reports:     {project.models_dir}/*/report.html; {len(heatmaps)} heatmaps")
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()) + f"; total {total:.1f} s")
    if problems:
        print("PROBLEMS:")
        for p in problems:
            print(f"  {p}")
        return 1
    print("  all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
