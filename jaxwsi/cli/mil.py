"""`jaxwsi mil`: feature bags (`extract`), MIL training (`train`), one slide (`predict`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from typing import Any

from jaxwsi.cli.arguments import positive_int, tile_um


def add(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi mil {extract,train,predict}`."""
    group = commands.add_parser("mil", help="multiple-instance learning on feature bags")
    sub = group.add_subparsers(dest="mil_command", required=True)

    ext = sub.add_parser(
        "extract",
        help="feature bags of a project's slides",
        description="Every tile of every slide through a feature extractor into one "
        "{slide}.npz bag per slide plus bags_config.json; finished slides are skipped.",
    )
    _project_args(ext)
    ext.add_argument("--extractor", required=True, help="registered extractor, e.g. resnet50_trunc")
    ext.add_argument("--weights", help="local .safetensors weights (none: random, a smoke test)")
    ext.add_argument("--outdir", default="auto", help="bags folder ('auto': PROJECT/bags/...)")
    ext.add_argument("--batch-size", type=positive_int, default=64)
    ext.add_argument("--min-tiles", type=int, default=16, help="slides with fewer get no bag")
    ext.add_argument("--max-tiles", type=int, default=0, help="cap per slide (0: all)")
    ext.add_argument("--normalizer", help="stain normalizer method, e.g. reinhard")
    ext.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ext.add_argument("--shard", help="i/n: only every n-th slide from the i-th (SLURM arrays)")
    ext.add_argument("--overwrite", action="store_true", help="re-extract finished slides")
    ext.add_argument("--no-progress", action="store_true")
    ext.set_defaults(handler=_run_extract)

    train = sub.add_parser(
        "train",
        help="train a MIL model on feature bags (cross-validated over the project's splits)",
        description="Train a MIL model into PROJECT/models/mil/NNNNN-label, one run per fold "
        "of the project's patient-level split (reused from splits.json when it matches).",
    )
    _project_args(train)
    train.add_argument(
        "--outcome",
        required=True,
        nargs="+",
        help="annotation column(s): one categorical, or one or more continuous with a "
        "regression --loss",
    )
    train.add_argument("--bags", required=True, help="folder of {slide}.npz / .h5 bags")
    train.add_argument("--k-fold", type=positive_int, default=3)
    train.add_argument("--strategy", default="k-fold", help="split strategy (Dataset.split)")
    train.add_argument("--heatmaps", action="store_true", help="attention heatmaps as PNGs")
    train.add_argument(
        "--model-option",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="model option, e.g. k_sample=8 (repeatable)",
    )
    _config_args(train)
    train.set_defaults(handler=_run_train)

    pred = sub.add_parser("predict", help="predict one whole-slide image with a MIL model")
    pred.add_argument("model_dir", help="a trained MIL model folder (mil_params.json)")
    pred.add_argument("slide", help="whole-slide image")
    pred.add_argument("--weights", help="the extractor's weights file, if it moved")
    pred.add_argument("--heatmap", help="write the attention heatmap PNG here")
    pred.set_defaults(handler=_run_predict)


def _project_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("project", help="project folder")
    p.add_argument("--tile-px", type=positive_int, required=True, help="tile side in pixels")
    p.add_argument("--tile-um", type=tile_um, required=True, help="tile side in µm or '10x'")


def _config_args(p: argparse.ArgumentParser) -> None:
    """One flag per `MILConfig` field, its default (and choices) taken from the dataclass."""
    from jaxwsi.mil.config import MILConfig

    for field in dataclasses.fields(MILConfig):
        if field.name == "model_options":
            continue
        default = field.default
        flag = "--" + field.name.replace("_", "-")
        doc = f"MILConfig.{field.name}"
        if "choices" in field.metadata:
            p.add_argument(flag, choices=field.metadata["choices"], default=default, help=doc)
        elif isinstance(default, bool):
            p.add_argument(flag, type=_bool, default=default, metavar="BOOL", help=doc)
        elif default is None:
            p.add_argument(flag, type=int, default=None, help=doc)
        else:
            p.add_argument(flag, type=type(default), default=default, help=doc)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d+)/(\d+)", text)
    if match is None:
        raise ValueError(f"--shard must look like 0/4, got {text!r}")
    return int(match.group(1)), int(match.group(2))


def _run_extract(args: argparse.Namespace) -> int:
    from jaxwsi.project import load_project

    project = load_project(args.project)
    report = project.generate_feature_bags(
        args.extractor,
        project.dataset(args.tile_px, args.tile_um),
        args.outdir,
        weights=args.weights,
        normalizer=args.normalizer,
        dtype=args.dtype,
        batch_size=args.batch_size,
        min_tiles=args.min_tiles,
        max_tiles=args.max_tiles,
        shard=_shard(args.shard),
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(report["status"].value_counts().to_string())
    return 0


def _run_train(args: argparse.Namespace) -> int:
    from jaxwsi.mil.config import FIELDS, MILConfig
    from jaxwsi.project import load_project

    options: dict[str, Any] = {}
    for item in args.model_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--model-option must be KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    values = {name: getattr(args, name) for name in FIELDS if name != "model_options"}
    config = MILConfig(model_options=options, **values)
    project = load_project(args.project)
    dataset = project.dataset(args.tile_px, args.tile_um)
    frames = project.train_mil(
        config,
        args.outcome,
        args.bags,
        dataset=dataset,
        val_strategy=args.strategy,
        val_k_fold=args.k_fold,
        attention_heatmaps=args.heatmaps,
    )
    print(f"trained {len(frames)} model(s) under {project.models_dir / 'mil'}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from jaxwsi.mil.slide import predict_slide

    result = predict_slide(args.model_dir, args.slide, weights=args.weights, heatmap=args.heatmap)
    for category, p in zip(result.categories, result.probs, strict=True):
        print(f"{category}\t{p:.4f}")
    return 0
