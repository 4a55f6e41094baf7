"""`extract_features`: every tile of every slide through a feature extractor, one bag per slide.

Each slide's TFRecord is read once, in stored order, by the native loader (finite, unshuffled,
every record exactly once; ``max_tiles`` keeps a seeded subset), stain-normalized on the host
when asked, and embedded on every local device by the jit-compiled extractor; batches have one
fixed size (the last is padded) so one shape is compiled. JAX dispatch is asynchronous, so the
loader reads the next batch while the devices embed this one. Each bag is written atomically
and finished slides are skipped, so an interrupted run resumes where it stopped; ``shard=(i, n)``
takes every n-th slide from the i-th (SLURM arrays).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from jaxwsi.dataset import Dataset
from jaxwsi.io import Interleaver
from jaxwsi.messages import name_some
from jaxwsi.mil.bags import BAGS_CONFIG, read_bags_config, write_bag, write_bags_config
from jaxwsi.mil.errors import BagError
from jaxwsi.mil.extractor import FeatureExtractor, devices_multiple, feature_extractor
from jaxwsi.train.progress import Progress

log = logging.getLogger(__name__)

# bags_config.json entries that must agree for a folder's bags to be one feature space.
_MUST_MATCH = (
    "extractor",
    "weights_sha256",
    "preprocessing",
    "normalizer",
    "num_features",
    "tile_px",
    "tile_um",
    "dtype",
)


def extract_features(
    extractor: str | Any,
    dataset: Dataset,
    outdir: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] | None = None,
    normalizer: str | None = None,
    dtype: str = "float32",
    batch_size: int = 64,
    min_tiles: int = 16,
    max_tiles: int = 0,
    shard: tuple[int, int] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> pd.DataFrame:
    """Write ``outdir/{slide}.npz`` bags and ``bags_config.json``; returns one row per slide
    (slide, tiles, status: ``done`` / ``skipped`` (bag exists) / ``too_few_tiles``).

    ``extractor``: a registered extractor name (with ``weights``, a local ``.safetensors``), a
    trained `TileModel`, a module with ``preprocessing``, or a `FeatureExtractor`.
    ``min_tiles``: slides with fewer tiles get no bag; ``max_tiles`` > 0 caps the tiles per bag.
    """
    fx: FeatureExtractor = feature_extractor(
        extractor, weights=weights, dtype=dtype, normalizer=normalizer
    )
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    config = {**fx.config(), "tile_px": dataset.tile_px, "tile_um": dataset.tile_um}
    _check_folder_config(outdir, config, overwrite)
    write_bags_config(outdir, config)

    slides = dataset.slides()
    paths = dict(zip(slides, dataset.tfrecords(), strict=True))
    if shard is not None:
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
        slides = slides[index::count]
    total = {p: m["total"] for p, m in dataset.manifest().items()}
    batch = devices_multiple(batch_size)

    rows: list[dict[str, Any]] = []
    todo = []
    for slide in slides:
        n = total[paths[slide]]
        if (outdir / f"{slide}.npz").exists() and not overwrite:
            rows.append({"slide": slide, "tiles": n, "status": "skipped"})
        elif n < min_tiles:
            rows.append({"slide": slide, "tiles": n, "status": "too_few_tiles"})
        else:
            todo.append(slide)
    few = [r["slide"] for r in rows if r["status"] == "too_few_tiles"]
    if few:
        log.warning(
            "%d slide(s) have fewer than %d tiles, no bag: %s", len(few), min_tiles, name_some(few)
        )
    expected = sum(min(total[paths[s]], max_tiles or total[paths[s]]) for s in todo)
    with Progress(expected, "features", disable=not progress) as bar:
        for slide in todo:
            features, locations = _embed_slide(fx, paths[slide], batch, max_tiles, bar)
            write_bag(outdir / f"{slide}.npz", features, locations)
            rows.append({"slide": slide, "tiles": len(features), "status": "done"})
    return pd.DataFrame(rows, columns=["slide", "tiles", "status"])


def _check_folder_config(outdir: Path, config: dict[str, Any], overwrite: bool) -> None:
    existing = read_bags_config(outdir)
    if existing is None or overwrite:
        return
    differ = [k for k in _MUST_MATCH if existing.get(k) != config.get(k)]
    if differ:
        raise BagError(
            f"{outdir / BAGS_CONFIG}: the folder holds bags made differently ({', '.join(differ)} "
            f"differ: {[existing.get(k) for k in differ]} vs {[config.get(k) for k in differ]}); "
            "use another outdir, or overwrite=True to re-extract every slide"
        )


def _embed_slide(
    fx: FeatureExtractor,
    path: str,
    batch: int,
    max_tiles: int,
    bar: Progress,
) -> tuple[np.ndarray, np.ndarray]:
    loader = Interleaver(
        [path],
        batch_size=batch,
        infinite=False,
        shuffle=False,
        drop_remainder=False,
        incl_loc=True,
        clip=max_tiles or None,
        rank=0,
        num_replicas=1,
    )
    pending, locations = [], []
    for item in loader:
        images = item["image"]
        n = len(images)
        if n < batch:
            images = np.concatenate([images, np.zeros((batch - n, *images.shape[1:]), np.uint8)])
        pending.append((fx.embed(images), n))  # asynchronous: the loader reads on meanwhile
        locations.append(np.stack([item["loc_x"], item["loc_y"]], axis=1))
        bar.update(n)
    features = np.concatenate([np.asarray(f)[:n] for f, n in pending])
    return features, np.concatenate(locations)
