"""`jaxwsi project`: create projects, make and save data splits."""

from __future__ import annotations

import argparse


def add(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi project create|split` (jaxwsi.project, jaxwsi.dataset.Dataset)."""
    group = commands.add_parser("project", help="create a project; make and save data splits")
    actions = group.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="a project folder with settings and annotations")
    create.add_argument("root", help="project folder to create")
    create.add_argument("--annotations", help="CSV with columns patient, slide, outcomes")
    create.add_argument("--slides", help="folder of whole-slide images")
    create.set_defaults(handler=_run_project_create)
    split = actions.add_parser(
        "split", help="make (or reuse) a patient-level split, saved in the project's splits.json"
    )
    split.add_argument("root", help="project folder")
    split.add_argument("--tile-px", type=int, required=True, help="tile side in pixels")
    split.add_argument("--tile-um", required=True, help="tile side in µm (302) or '10x'")
    split.add_argument("--headers", nargs="*", default=[], help="outcome columns to stratify by")
    split.add_argument("--strategy", default="k-fold", help="k-fold, fixed, bootstrap, ...")
    split.add_argument("--k-fold", type=int, default=3, help="folds (bootstrap: rounds)")
    split.add_argument("--val-fraction", type=float, help="validation share for 'fixed'")
    split.add_argument("--manual-column", help="fold column for 'k-fold-manual'")
    split.add_argument("--site-column", default="site", help="site column (preserved-site)")
    split.add_argument("--use-float", action="store_true", help="continuous outcome: no strata")
    split.add_argument("--seed", type=int, default=0)
    split.set_defaults(handler=_run_project_split)


def _run_project_create(args: argparse.Namespace) -> int:
    from jaxwsi.project import create_project

    project = create_project(args.root, annotations=args.annotations, slides=args.slides)
    print(f"created {project.root} (annotations: {len(project.annotations())} slides)")
    return 0


def _run_project_split(args: argparse.Namespace) -> int:
    from jaxwsi.project import load_project

    tile_um: int | str = int(args.tile_um) if args.tile_um.isdigit() else args.tile_um
    dataset = load_project(args.root).dataset(args.tile_px, tile_um)
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
