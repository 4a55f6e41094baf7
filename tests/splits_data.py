"""Shared by the split tests: a dataset of patients' slides, each a copy of one fixture TFRecord,
annotated per patient."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

import jaxwsi


def patient_dataset(
    root: Path,
    fixtures_dir: Path,
    slides: Sequence[tuple[str, str]],
    columns: Mapping[str, Mapping[str, object]],
) -> jaxwsi.Dataset:
    """``slides`` ((patient, slide) pairs) as copies of ``slide_c.tfrecords`` in
    ``root/tfrecords``; annotations ``patient``, ``slide`` and ``columns`` (column → patient →
    value), in that order; splits saved in ``root/splits.json``."""
    folder = root / "tfrecords"
    folder.mkdir()
    for _, slide in slides:
        shutil.copy(fixtures_dir / "tfrecords" / "slide_c.tfrecords", folder / f"{slide}.tfrecords")
    annotations = pd.DataFrame(
        {
            "patient": [p for p, _ in slides],
            "slide": [s for _, s in slides],
            **{name: [values[p] for p, _ in slides] for name, values in columns.items()},
        }
    )
    return jaxwsi.Dataset(annotations, folder, splits=root / "splits.json")
