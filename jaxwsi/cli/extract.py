"""`jaxwsi extract`: slides → tile TFRecords."""

from __future__ import annotations

import argparse


def add(commands: argparse._SubParsersAction) -> None:
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
