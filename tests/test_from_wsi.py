"""Training straight from slides: tile references give the TFRecord path's exact stream
(same tiles, order, shards, resume), with pixels read from the slides in the loader."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jaxwsi
from jaxwsi.experiment.from_wsi import WSIDataset, wsi_dataset
from jaxwsi.slide.extract import ExtractionSettings
from jaxwsi.testing import synthetic_slide

PX = UM = 64


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> jaxwsi.Project:
    root = tmp_path_factory.mktemp("from_wsi")
    (root / "slides").mkdir()
    rows = []
    for i in range(4):
        synthetic_slide(
            root / "slides" / f"s{i}.tiff", width=1024, height=768, tissue_class=i % 2, seed=i
        )
        rows.append({"patient": f"p{i}", "slide": f"s{i}", "tissue": ["a", "b"][i % 2]})
    project = jaxwsi.create_project(
        root / "project", annotations=pd.DataFrame(rows), slides=root / "slides"
    )
    project.extract_tiles(PX, UM, qc="otsu", num_workers=0, progress=False)
    return project


@pytest.fixture(scope="module")
def from_slides(project: jaxwsi.Project) -> WSIDataset:
    settings = ExtractionSettings(tile_px=PX, tile_um=UM, qc="otsu")
    return wsi_dataset(
        project.annotations_path, project.slide_paths(), project.root / "refs", settings
    )


def _read(loader) -> list[dict]:
    return list(loader)


def test_same_tiles_same_order_as_extracted(project, from_slides) -> None:
    extracted = project.dataset(PX, UM)
    assert {Path(p).name: m for p, m in extracted.manifest().items()} == {
        Path(p).name: m for p, m in from_slides.manifest().items()
    }
    options = dict(
        batch_size=16,
        infinite=False,
        drop_remainder=False,
        seed=3,
        rank=0,
        num_replicas=1,
        incl_loc=True,
        incl_slidenames=True,
    )
    a = _read(extracted.balance("tissue").clip(10).interleaver("tissue", **options))
    b = _read(from_slides.balance("tissue").clip(10).interleaver("tissue", **options))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        for key in ("slide", "loc_x", "loc_y", "label"):
            np.testing.assert_array_equal(x[key], y[key])
        assert y["image"].dtype == np.uint8 and y["image"].shape == x["image"].shape
        # The same pixels up to the extracted tiles' JPEG (quality 95) round trip.
        assert np.abs(x["image"].astype(int) - y["image"]).mean() < 6


def test_without_routing_keys_unless_asked(from_slides) -> None:
    batch = next(iter(from_slides.interleaver("tissue", batch_size=4, rank=0, num_replicas=1)))
    assert sorted(batch) == ["image", "label"]


def test_shards_partition_the_tiles(from_slides) -> None:
    seen = []
    for rank in range(2):
        loader = from_slides.interleaver(
            batch_size=8,
            infinite=False,
            drop_remainder=False,
            rank=rank,
            num_replicas=2,
            incl_loc=True,
            incl_slidenames=True,
        )
        seen.append(
            {
                (s, x, y)
                for b in loader
                for s, x, y in zip(b["slide"], b["loc_x"], b["loc_y"], strict=True)
            }
        )
    assert not seen[0] & seen[1]
    assert len(seen[0] | seen[1]) == from_slides.num_tiles


def test_grain_stream_resumes_exactly_and_pickles(from_slides) -> None:
    pipeline = from_slides.grain("tissue", batch_size=8, seed=5, rank=0, num_replicas=1)
    pipeline = pickle.loads(pickle.dumps(pipeline))  # what Grain's worker processes get
    iterator = iter(pipeline)
    for _ in range(3):
        next(iterator)
    state = iterator.get_state()
    expected = [next(iterator) for _ in range(2)]
    restored = iter(pipeline)
    restored.set_state(state)
    for want in expected:
        got = next(restored)
        np.testing.assert_array_equal(want["image"], got["image"])
        np.testing.assert_array_equal(want["label"], got["label"])


def test_splits_keep_the_slide_reader(from_slides) -> None:
    training, validation = from_slides.split("tissue", k_fold=2, splits=None)[0]
    assert isinstance(training, WSIDataset) and isinstance(validation, WSIDataset)
    batch = next(iter(validation.interleaver("tissue", batch_size=4, rank=0, num_replicas=1)))
    assert batch["image"].shape == (4, PX, PX, 3)
