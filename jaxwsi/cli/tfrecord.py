"""`jaxwsi tfrecord`: inspect, verify, index and dump TFRecord files."""

from __future__ import annotations

import argparse


def add(commands: argparse._SubParsersAction) -> None:
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
