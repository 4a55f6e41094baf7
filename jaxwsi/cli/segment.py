"""`jaxwsi segment`: train a segmentation model from a YAML file; predict images with it."""

from __future__ import annotations

import argparse
import dataclasses


def add(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi segment train|predict` (jaxwsi.segment)."""
    from jaxwsi.segment.config import PredictionConfig

    group = commands.add_parser("segment", help="train U-Nets on image/label folders; predict")
    actions = group.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="train as a YAML configuration says")
    train.add_argument("config", help="YAML file (see README, 'Segmentation')")
    train.set_defaults(handler=_run_train)
    predict = actions.add_parser(
        "predict", help="foreground probability (float32 TIFF, same size) of each image"
    )
    predict.add_argument("model", help="a training run folder (its checkpoint_dir)")
    predict.add_argument("inputs", nargs="+", help="image files (tif, png, jpg)")
    predict.add_argument("--out", required=True, help="folder for OUT/IMAGE.tif")
    # One flag per prediction setting; unset flags keep the model's saved settings.
    for f in dataclasses.fields(PredictionConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool",):
            predict.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.name == "tile":
            predict.add_argument(flag, type=int, nargs="+", default=None, help="window size_in")
        else:
            kind = {"float": float, "int": int}.get(str(f.type), str)
            predict.add_argument(flag, type=kind, default=None)
    predict.set_defaults(handler=_run_predict)


def _run_train(args: argparse.Namespace) -> int:
    from jaxwsi.segment.config import load_config
    from jaxwsi.segment.trainer import train

    result = train(load_config(args.config))
    state = "stopped (resumable)" if result.stopped else "done"
    print(
        f"{state}: {result.epochs_done} epochs, step {result.step}, batch {result.batch_size}, "
        f"size_in {result.size_in} → size_out {result.size_out}; model: "
        f"{result.run_dir / 'model'} (step {result.exported_step})"
    )
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from pathlib import Path

    from jaxwsi.segment.config import PredictionConfig
    from jaxwsi.segment.data import read_image
    from jaxwsi.segment.output import write_tiff
    from jaxwsi.segment.saved import load_model

    model = load_model(args.model)
    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(PredictionConfig)}
    out = Path(args.out)
    for name in args.inputs:
        path = Path(name)
        probability = model.predict(read_image(path), **options)
        target = out / f"{path.stem}.tif"
        write_tiff(target, probability.astype("float32"))
        print(f"{path} → {target} {probability.shape}")
    return 0
