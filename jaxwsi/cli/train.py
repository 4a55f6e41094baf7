"""`jaxwsi train CONFIG`, `jaxwsi evaluate`, `jaxwsi predict`, `jaxwsi heatmap`: the experiment
steps of `jaxwsi.Project` (training plans, evaluation, prediction, heatmaps and reports)."""

from __future__ import annotations

import argparse


def _filters(items: list[str] | None) -> dict[str, list[str]] | None:
    """``["site=A", "site=B", "grade=1"]`` → ``{"site": ["A", "B"], "grade": ["1"]}``."""
    if not items:
        return None
    filters: dict[str, list[str]] = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column:
            raise ValueError(f"--filter takes COLUMN=VALUE, got {item!r}")
        filters.setdefault(column, []).append(value)
    return filters


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="project folder")
    parser.add_argument("model", help="model folder (models/00000-...)")
    parser.add_argument(
        "--filter",
        action="append",
        metavar="COLUMN=VALUE",
        help="keep slides with this annotation value (repeatable; values of one column are OR-ed)",
    )


def add(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi train|evaluate|predict|heatmap` (jaxwsi.experiment)."""
    train = commands.add_parser(
        "train", help="train tile models as a configuration file says (CV, sweeps, from_wsi)"
    )
    train.add_argument("config", help="YAML/JSON file (see README, 'Experiments')")
    train.add_argument(
        "--report",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write heatmaps and report.html into each model folder",
    )
    train.set_defaults(handler=_run_train)

    evaluate = commands.add_parser(
        "evaluate", help="metrics and {tile,slide,patient}_predictions_eval.parquet of a model"
    )
    _model_arguments(evaluate)
    evaluate.add_argument("--outcomes", nargs="+", help="outcome column(s) (default: the model's)")
    evaluate.set_defaults(handler=_run_evaluate)

    predict = commands.add_parser("predict", help="tile/slide/patient predictions of a model")
    _model_arguments(predict)
    predict.add_argument("--out", help="folder for the prediction tables (default: the model's)")
    predict.set_defaults(handler=_run_predict)

    heatmap = commands.add_parser(
        "heatmap", help="per-slide prediction heatmaps (one PNG per class) and report.html"
    )
    _model_arguments(heatmap)
    heatmap.add_argument("--outdir", help="folder for the PNGs (default: MODEL/heatmaps)")
    heatmap.set_defaults(handler=_run_heatmap)


def _run_train(args: argparse.Namespace) -> int:
    from jaxwsi.experiment.config import load_train_config
    from jaxwsi.experiment.summary import metrics_table
    from jaxwsi.project import Project

    config = load_train_config(args.config)
    project = Project(config.project)
    results = project.train(params=config.params, **config.options)
    if args.report:
        for name in results:
            project.generate_heatmaps(project.models_dir / name)
    print(metrics_table(results).to_string(index=False))
    print(f"models in {project.models_dir}; results log {project.root / 'results_log.csv'}")
    return 0


def _run_evaluate(args: argparse.Namespace) -> int:
    from jaxwsi.project import Project

    project = Project(args.project)
    metrics = project.evaluate(args.model, args.outcomes, filters=_filters(args.filter))
    for key, value in metrics.items():
        print(f"{key}: {value}")
    return 0


def _run_predict(args: argparse.Namespace) -> int:
    from jaxwsi.project import Project

    project = Project(args.project)
    written = project.predict(args.model, filters=_filters(args.filter), outdir=args.out)
    for path in written:
        print(path)
    return 0


def _run_heatmap(args: argparse.Namespace) -> int:
    from jaxwsi.project import Project

    project = Project(args.project)
    paths = project.generate_heatmaps(args.model, filters=_filters(args.filter), outdir=args.outdir)
    print(f"{len(paths)} heatmaps in {paths[0].parent if paths else args.outdir}")
    return 0
