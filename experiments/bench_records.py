"""Benchmark: TFRecord read + CRC verify + Example parse, and index building, from page cache.

Compares, on the same generated files and in one run:
- jaxwsi native scan (read + verify both CRC32Cs + parse every Example, no Python objects);
- jaxwsi.io.read_records (the same, plus building a Python dict per record), with and without
  CRC verification;
- the pure-Python `tfrecord` package's reader (parses, never verifies CRCs);
- physical anchors: copying the file out of page cache and CRC32C over it (`crc32c` package);
- index building: jaxwsi.io.build_index vs tfrecord.tools.tfrecord2idx.create_index, and
  jaxwsi.io.build_indexes over all files in parallel.
Throughput is MB/s of file bytes on one thread (= per core) unless marked parallel.

Run: .venv/bin/python experiments/bench_records.py [--files 2 --records 2000 --tile-kb 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from jaxwsi import _native
from jaxwsi.io import TFRecordWriter, build_index, build_indexes, read_records


def _write_tiles(path: Path, records: int, tile_bytes: int, seed: int) -> None:
    """Slideflow-layout records with incompressible `tile_bytes`-byte payloads (JPEG-sized)."""
    rng = np.random.default_rng(seed)
    with TFRecordWriter(path) as w:
        for i in range(records):
            w.write(
                {
                    "image_raw": rng.bytes(tile_bytes),
                    "slide": path.stem,
                    "loc_x": int(i % 100) * 299,
                    "loc_y": int(i // 100) * 299,
                }
            )


def _best_seconds(run: Callable[[], object], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def _drain(iterator) -> int:
    n = 0
    for _ in iterator:
        n += 1
    return n


def _machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip() for line in lscpu.splitlines() if "Model name" in line
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2, help="number of TFRecord files")
    parser.add_argument("--records", type=int, default=2000, help="records per file")
    parser.add_argument("--tile-kb", type=float, default=32, help="image_raw size in KiB")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    parser.add_argument("--workdir", help="where to write the files (default: a temp dir)")
    args = parser.parse_args()

    import crc32c
    from tfrecord.reader import tfrecord_loader
    from tfrecord.tools.tfrecord2idx import create_index

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        paths = [Path(tmp) / f"slide_{i}.tfrecords" for i in range(args.files)]
        for i, path in enumerate(paths):
            _write_tiles(path, args.records, int(args.tile_kb * 1024), seed=i)
        sizes = [p.stat().st_size for p in paths]
        total = sum(sizes)
        first, first_mb = paths[0], sizes[0] / 1e6
        for p in paths:  # warm the page cache
            p.read_bytes()

        def mbps(seconds: float, nbytes: float = first_mb * 1e6) -> str:
            return f"{nbytes / 1e6 / seconds:,.0f}"

        rows: list[tuple[str, str, str]] = []

        def bench(name: str, run: Callable[[], object], nbytes: float = first_mb * 1e6) -> float:
            seconds = _best_seconds(run, args.repeats)
            rows.append((name, f"{seconds * 1e3:,.1f} ms", mbps(seconds, nbytes)))
            return seconds

        data = first.read_bytes()
        bench("anchor: copy file out of page cache (read_bytes)", first.read_bytes)
        bench("anchor: CRC32C over the file (crc32c package, C)", lambda: crc32c.crc32c(data))
        bench(
            "jaxwsi native: read + verify CRCs + parse (1 thread)",
            lambda: _native.verify_paths([str(first)], True),
        )
        bench(
            "jaxwsi native: read + verify CRCs, no parse (1 thread)",
            lambda: _native.verify_paths([str(first)], False),
        )
        bench(
            "jaxwsi read_records (dicts), verify=True",
            lambda: _drain(read_records(first)),
        )
        bench(
            "jaxwsi read_records (dicts), verify=False",
            lambda: _drain(read_records(first, verify=False)),
        )
        bench(
            "tfrecord package reader (parse, no CRC check)",
            lambda: _drain(tfrecord_loader(str(first), None)),
        )
        bench(
            f"jaxwsi native verify+parse, {args.files} files in parallel",
            lambda: _native.verify_paths([str(p) for p in paths], True),
            nbytes=total,
        )
        index_rows = []
        for name, run in [
            (
                "jaxwsi build_index (verify CRCs + locations)",
                lambda: build_index(first, force=True),
            ),
            (
                "tfrecord2idx.create_index (no CRC, no locations)",
                lambda: create_index(str(first), str(first) + ".idx"),
            ),
            (
                f"jaxwsi build_indexes, {args.files} files in parallel",
                lambda: build_indexes(paths, force=True),
            ),
        ]:
            seconds = _best_seconds(run, args.repeats)
            index_rows.append((name, f"{seconds * 1e3:,.1f} ms"))

    print(f"machine: {_machine()}")
    print(
        f"data: {args.files} files x {args.records} records x {args.tile_kb:g} KiB image_raw "
        f"({first_mb:.1f} MB per file), best of {args.repeats}, page cache warm\n"
    )
    print("| read path | time (1 file) | MB/s |")
    print("|---|---:|---:|")
    for name, t, rate in rows:
        print(f"| {name} | {t} | {rate} |")
    print("\n| index build | time |")
    print("|---|---:|")
    for name, t in index_rows:
        print(f"| {name} | {t} |")


if __name__ == "__main__":
    main()
