"""The `jaxwsi` command: every sub-command is declared here, and each calls the library API.

Each command group has one ``_add_<group>`` function that declares its parser and binds a handler;
handlers return the process exit code.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxwsi",
        description="Whole-slide images to tiles, TFRecords and datasets for JAX (see README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in _COMMAND_GROUPS:
        add(commands)
    return parser


def _add_extract(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi extract`: slides → tile TFRecords (jaxwsi.slide.extract_tiles)."""
    p = commands.add_parser(
        "extract",
        help="extract tiles from whole-slide images into TFRecords",
        description="Extract tiles from whole-slide images into {outdir}/{px}px_{um}um/"
        "{slide}.tfrecords with indexes, thumbnails and extraction_report.csv/.html. "
        "Finished slides are skipped on a re-run.",
    )
    p.add_argument("slides", nargs="+", help="slide files, or one folder of slides")
    p.add_argument("--outdir", required=True, help="root folder for the tile TFRecords")
    p.add_argument("--tile-px", type=int, required=True, help="tile side in pixels")
    p.add_argument(
        "--tile-um", required=True, help="tile side in µm (e.g. 302) or a magnification ('10x')"
    )
    p.add_argument("--stride-div", type=int, default=1, help="grid stride = tile / this")
    p.add_argument("--mpp", type=float, help="µm per level-0 pixel, overriding the metadata")
    p.add_argument("--roi-dir", help="folder of {slide}.csv / {slide}.geojson QuPath ROIs")
    p.add_argument("--roi-method", default="auto", choices=("inside", "outside", "auto", "ignore"))
    p.add_argument("--edge-tiles", action="store_true", help="keep edge tiles (padded white)")
    p.add_argument("--whitespace-fraction", type=float, default=1.0)
    p.add_argument("--whitespace-threshold", type=float, default=230)
    p.add_argument("--grayspace-fraction", type=float, default=0.6)
    p.add_argument("--grayspace-threshold", type=float, default=0.05)
    p.add_argument("--qc", choices=("otsu", "blur", "both"), help="slide-level QC")
    p.add_argument("--qc-fraction", type=float, default=0.6)
    p.add_argument("--img-format", default="jpg", choices=("jpg", "png"))
    p.add_argument("--jpeg-quality", type=int, default=95)
    p.add_argument("--seed", type=int, default=0, help="seed of the per-slide tile shuffle")
    p.add_argument("--workers", type=int, help="worker processes (default: all CPUs; 0: none)")
    p.add_argument("--shard", help="i/n: extract only the i-th of n shares of the slides")
    p.add_argument("--overwrite", action="store_true", help="re-extract finished slides")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--stall-timeout",
        type=float,
        default=600.0,
        help="kill the workers when no task finishes for this many seconds (a hang)",
    )
    p.set_defaults(handler=_run_extract)


def _run_extract(args: argparse.Namespace) -> int:
    import re

    from jaxwsi.slide import extract_tiles

    tile_um: float | str = args.tile_um
    if re.fullmatch(r"\d+(\.\d+)?", args.tile_um):
        tile_um = float(args.tile_um) if "." in args.tile_um else int(args.tile_um)
    shard = None
    if args.shard is not None:
        match = re.fullmatch(r"(\d+)/(\d+)", args.shard)
        if match is None:
            raise SystemExit(f"jaxwsi extract: --shard must look like 0/4, got {args.shard!r}")
        shard = (int(match.group(1)), int(match.group(2)))
    slides = args.slides[0] if len(args.slides) == 1 else args.slides
    report = extract_tiles(
        slides,
        args.outdir,
        args.tile_px,
        tile_um,
        stride_div=args.stride_div,
        mpp=args.mpp,
        roi_dir=args.roi_dir,
        roi_method=args.roi_method,
        use_edge_tiles=args.edge_tiles,
        whitespace_fraction=args.whitespace_fraction,
        whitespace_threshold=args.whitespace_threshold,
        grayspace_fraction=args.grayspace_fraction,
        grayspace_threshold=args.grayspace_threshold,
        qc=args.qc,
        qc_fraction=args.qc_fraction,
        img_format=args.img_format,
        jpeg_quality=args.jpeg_quality,
        seed=args.seed,
        num_workers=args.workers,
        shard=shard,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        stall_timeout=args.stall_timeout,
    )
    failed = report[report["error"].fillna("").astype(str) != ""]
    print(f"{len(report)} slides, {int(report['num_tiles'].sum())} tiles, {len(failed)} failed")
    for row in failed.itertuples():
        print(f"  {row.slide}: {row.error}")
    return 1 if len(failed) else 0


def _add_tfrecord(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi tfrecord info|verify|index|dump FILE...` (jaxwsi.io)."""
    group = commands.add_parser("tfrecord", help="inspect, verify and index TFRecord files")
    actions = group.add_subparsers(dest="action", required=True)
    info = actions.add_parser("info", help="records, slides, image format and tile size")
    info.set_defaults(handler=_run_tfrecord_info)
    verify = actions.add_parser("verify", help="check every CRC and Example; non-zero if bad")
    verify.set_defaults(handler=_run_tfrecord_verify)
    index = actions.add_parser("index", help="build Slideflow-compatible .index.npz files")
    index.add_argument("--force", action="store_true", help="rebuild current indexes too")
    index.set_defaults(handler=_run_tfrecord_index)
    dump = actions.add_parser("dump", help="print records with offsets and feature values")
    dump.add_argument("--limit", type=int, default=10, help="records per file (0: all)")
    dump.set_defaults(handler=_run_tfrecord_dump)
    for p in (info, verify, index, dump):
        p.add_argument("files", nargs="+", help="TFRecord files")


def _print_error(path: str, error: BaseException) -> None:
    print(f"BAD {path}: {type(error).__name__}: {error}")


def _run_tfrecord_info(args: argparse.Namespace) -> int:
    from jaxwsi.io.summary import summarize

    failures = 0
    for path in args.files:
        try:
            info = summarize(path)
        except (ValueError, OSError) as e:
            _print_error(path, e)
            failures += 1
            continue
        slides = ", ".join(f"{s} ({n})" for s, n in info.slides.most_common()) or "-"
        formats = ", ".join(f"{f} ({n})" for f, n in info.image_formats.most_common()) or "-"
        sizes = ", ".join(f"{w}x{h}" for w, h in info.tile_sizes) or "-"
        print(f"{path}")
        print(f"  records:      {info.records}")
        print(f"  compression:  {info.compression}")
        print(f"  slides:       {slides}")
        print(f"  image format: {formats}")
        print(f"  tile size:    {sizes}")
        print(f"  features:     {', '.join(info.feature_keys) or '-'}")
    return 1 if failures else 0


def _run_tfrecord_verify(args: argparse.Namespace) -> int:
    from jaxwsi.io import verify_files

    reports = verify_files(args.files)
    for r in reports:
        if r.error is None:
            print(f"OK  {r.path}: {r.records} records, {r.bytes} bytes ({r.compression})")
        else:
            _print_error(r.path, r.error)
    bad = sum(not r.ok for r in reports)
    print(f"{len(reports) - bad} ok, {bad} bad")
    return 1 if bad else 0


def _run_tfrecord_index(args: argparse.Namespace) -> int:
    from jaxwsi.io.index import index_reports

    bad = 0
    for path, report in zip(args.files, index_reports(args.files, force=args.force), strict=True):
        if isinstance(report, BaseException):
            _print_error(path, report)
            bad += 1
        else:
            print(f"OK  {path} -> {report}")
    return 1 if bad else 0


def _run_tfrecord_dump(args: argparse.Namespace) -> int:
    from jaxwsi.io import iter_records_with_offsets
    from jaxwsi.io.summary import describe_value

    failures = 0
    for path in args.files:
        print(path)
        try:
            for i, (offset, framed, features) in enumerate(iter_records_with_offsets(path)):
                if args.limit and i >= args.limit:
                    print("  …")
                    break
                print(f"  record {i} at byte offset {offset} ({framed} bytes framed)")
                for key, value in features.items():
                    print(f"    {key}: {describe_value(value)}")
        except (ValueError, OSError) as e:
            _print_error(path, e)
            failures += 1
    return 1 if failures else 0


def _add_project(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi project create|split` (jaxwsi.project, jaxwsi.data.Dataset)."""
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


# One entry per command group; each adds its sub-parser and sets `handler`.
_COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction], None]] = []
_COMMAND_GROUPS.append(_add_extract)
_COMMAND_GROUPS.append(_add_tfrecord)
_COMMAND_GROUPS.append(_add_project)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen command; returns the exit code."""
    args = _build_parser().parse_args(argv)
    return int(args.handler(args))
