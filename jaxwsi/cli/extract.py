"""`jaxwsi extract`: slides → tile TFRecords.

The tile options are generated from `ExtractionSettings`' fields (name, default, help text,
choices), so they can never disagree with the library; the handler builds the settings object
from them and passes it whole.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from jaxwsi.cli.arguments import existing_dir, positive_int, tile_um

# Parsers for settings whose values need more than int()/float() (the rest follow the default).
_TYPES: dict[str, Any] = {"tile_px": positive_int, "tile_um": tile_um}


def add(commands: argparse._SubParsersAction) -> None:
    """`jaxwsi extract`: slides → tile TFRecords (jaxwsi.slide.extract_tiles)."""
    p = commands.add_parser(
        "extract",
        help="extract tiles from whole-slide images into TFRecords",
        description="Extract tiles from whole-slide images into {outdir}/{px}px_{um}um/"
        "{slide}.tfrecords with indexes, thumbnails and extraction_report.csv/.html. "
        "Finished slides are skipped on a re-run; the folder records its settings in "
        "extraction_settings.json and refuses a run with other settings. Exits with 1 when some "
        "slides failed, 2 when all did.",
    )
    p.add_argument("slides", nargs="+", help="slide files, or one folder of slides")
    p.add_argument("--outdir", required=True, help="root folder for the tile TFRecords")
    _add_settings(p.add_argument_group("tiles (recorded in extraction_settings.json)"))
    from jaxwsi.slide.workers import DEFAULT_STALL_TIMEOUT

    run = p.add_argument_group("run")
    run.add_argument(
        "--roi-dir", type=existing_dir, help="folder of {slide}.csv / {slide}.geojson QuPath ROIs"
    )
    run.add_argument(
        "--workers", type=int, help="worker processes (default: all CPUs; 0: in this process)"
    )
    run.add_argument("--shard", help="i/n: extract only the i-th of n shares of the slides")
    run.add_argument("--overwrite", action="store_true", help="re-extract finished slides")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.add_argument(
        "--stall-timeout",
        type=float,
        default=DEFAULT_STALL_TIMEOUT,
        help="kill a worker whose task runs longer than this many seconds (a hang)",
    )
    p.set_defaults(handler=_run_extract)


def _add_settings(group: argparse._ArgumentGroup) -> None:
    """One option per `ExtractionSettings` field: ``--tile-px``, ``--jpeg-quality``, ..."""
    from jaxwsi.slide.settings import ExtractionSettings

    for f in dataclasses.fields(ExtractionSettings):
        meta = dict(f.metadata)
        flag = meta.pop("flag", "--" + f.name.replace("_", "-"))
        options: dict[str, Any] = {"dest": f.name, "help": meta.pop("help")}
        if f.default is dataclasses.MISSING:
            options["required"] = True
        else:
            options["default"] = f.default
        if isinstance(f.default, bool):
            options["action"] = argparse.BooleanOptionalAction  # --edge-tiles / --no-edge-tiles
        else:
            if f.default is None and f.name not in _TYPES and "type" not in meta:
                raise TypeError(f"ExtractionSettings.{f.name} defaults to None: give it a type=")
            options["type"] = _TYPES.get(f.name) or meta.pop("type", None) or type(f.default)
            if "choices" in meta:
                options["choices"] = meta.pop("choices")
        group.add_argument(flag, **options)


def _run_extract(args: argparse.Namespace) -> int:
    import re

    from jaxwsi.slide import ExtractionSettings, extract_tiles

    settings = ExtractionSettings(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(ExtractionSettings)}
    )
    shard = None
    if args.shard is not None:
        match = re.fullmatch(r"(\d+)/(\d+)", args.shard)
        if match is None:
            raise SystemExit(f"jaxwsi extract: --shard must look like 0/4, got {args.shard!r}")
        shard = (int(match.group(1)), int(match.group(2)))
    slides = args.slides[0] if len(args.slides) == 1 else args.slides
    # When every slide fails, ExtractionError reaches jaxwsi.cli.main: one line, exit 2.
    report = extract_tiles(
        slides,
        args.outdir,
        settings=settings,
        roi_dir=args.roi_dir,
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
