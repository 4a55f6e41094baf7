"""`jaxwsi project`: create projects, make and save data splits."""

from __future__ import annotations

import argparse

from jaxwsi.cli.arguments import existing_dir, fraction, positive_int, tile_um


def add(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi project create|split` (jaxwsi.project, jaxwsi.dataset.Dataset)."""
    from jaxwsi.dataset.splits import SPLIT_STRATEGIES

    group = commands.add_parser("project", help="create a project; make and save data splits")
    actions = group.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a project folder with settings and annotations")
    create.add_argument("root", help="project folder to create")
    create.add_argument(
        "--annotations", help="CSV (UTF-8) with columns patient, slide and outcomes"
    )
    create.add_argument("--slides", type=existing_dir, help="folder of whole-slide images")
    create.set_defaults(handler=_run_project_create)
    split = actions.add_parser(
        "split",
        help="make (or reuse) a patient-level split, saved in the project's splits.json",
        description="Make a patient-level split of the project's slides with TFRecords of one "
        "tile size, or reuse the matching one in splits.json (Slideflow's entries included).",
    )
    split.add_argument("root", help="project folder (jaxwsi's or Slideflow's)")
    split.add_argument("--tile-px", type=positive_int, required=True, help="tile side in pixels")
    split.add_argument(
        "--tile-um", type=tile_um, required=True, help="tile side in µm (302, 302.5) or '10x'"
    )
    split.add_argument("--headers", nargs="*", default=[], help="outcome columns to stratify by")
    split.add_argument(
        "--strategy", default="k-fold", choices=SPLIT_STRATEGIES, help="how to split the patients"
    )
    split.add_argument(
        "--k-fold", type=positive_int, default=3, help="number of folds (bootstrap: rounds)"
    )
    split.add_argument(
        "--val-fraction", type=fraction, help="share of patients validated on ('fixed')"
    )
    split.add_argument("--manual-column", help="annotation column of fold values (k-fold-manual)")
    split.add_argument(
        "--site-column", default="site", help="annotation column of sites (preserved-site)"
    )
    split.add_argument(
        "--use-float", action="store_true", help="the outcome is continuous: no stratification"
    )
    split.add_argument("--seed", type=int, default=0, help="seed of the patient shuffle")
    split.set_defaults(handler=_run_project_split)


def _run_project_create(args: argparse.Namespace) -> int:
    from jaxwsi.project import create_project

    project = create_project(args.root, annotations=args.annotations, slides=args.slides)
    if args.annotations is None:
        print(f"created {project.root} (no annotations yet: add rows to annotations.csv)")
    else:
        print(f"created {project.root} (annotations: {len(project.annotations())} slides)")
    return 0


def _run_project_split(args: argparse.Namespace) -> int:
    from jaxwsi.project import load_project

    dataset = load_project(args.root).dataset(args.tile_px, args.tile_um)
    folds = dataset.split(
        args.headers or None,
        args.strategy,
        k_fold=args.k_fold,
        val_fraction=args.val_fraction,
        seed=args.seed,
        use_float=args.use_float,
        manual_column=args.manual_column,
        site_column=args.site_column,
    )
    for i, (training, validation) in enumerate(folds, start=1):
        print(
            f"fold {i}: {len(training)} training slides ({training.num_tiles} tiles), "
            f"{len(validation)} validation slides ({validation.num_tiles} tiles)"
        )
    return 0
