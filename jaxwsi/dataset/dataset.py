"""Dataset: the slides of an annotations table that have TFRecords of one tile size.

A Dataset is immutable: ``filter``, ``balance``, ``clip`` and friends return new datasets. It
keeps the full annotations and TFRecord tile counts, plus *what was asked* (filters, balance and
clip strategies); the member slides, weights and clip counts are computed from those, so
``filter`` after ``balance`` re-balances the remaining slides with the same strategy.

Membership: an annotated slide is in the dataset when it has a non-empty TFRecord, passes the
filters and has at least ``min_tiles`` tiles. Slides without a TFRecord, TFRecords without an
annotation row and empty TFRecords are left out with a warning that counts and names them.
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from jaxwsi.dataset.annotations import AnnotationsSource, load_annotations
from jaxwsi.dataset.balance import balance_weights, check_balance_strategy
from jaxwsi.dataset.clip import check_clip_strategy, clip_counts
from jaxwsi.dataset.errors import DatasetError, SplitError
from jaxwsi.dataset.filters import Filters, apply_filters, normalize_filters
from jaxwsi.dataset.labels import (
    Label,
    UseFloat,
    as_headers,
    category_of_slides,
    checked_values,
    is_float_column,
    slide_labels,
)
from jaxwsi.dataset.patient_splits import class_names, patient_table, split_patients
from jaxwsi.dataset.splits import check_split_strategy
from jaxwsi.dataset.tfrecord_files import TFRecordSource, count_tiles, find_tfrecords
from jaxwsi.io.interleaver import Interleaver
from jaxwsi.messages import name_some

if TYPE_CHECKING:  # the Grain pipeline imports JAX; the cohort side must not
    from jaxwsi.pipeline.grain_source import InterleavedDataset

log = logging.getLogger(__name__)

LabelsArg = str | Sequence[str] | Mapping[str, Any] | None


class Dataset:
    """Annotated slides with TFRecords, their labels, filters, splits, weights and clips.

    Args:
        annotations: CSV path or DataFrame with columns ``patient``, ``slide`` and outcomes
            (optional ``dataset``, ``site``).
        tfrecords: a folder of ``{slide}.tfrecords``, a folder of tile-size sub-folders as
            Slideflow lays them out (``{tile_px}px_{tile_um}um/``, chosen by ``tile_px`` and
            ``tile_um``), or a list of TFRecord paths.
        tile_px, tile_um: the tile size these TFRecords hold (chooses the sub-folder; recorded,
            not checked against the tiles).
        filters: column → allowed value(s); ``filter_blank``: columns that must not be blank.
        min_tiles: leave out slides with fewer tiles.
        splits: default splits.json path for `split` (a project sets its own).
    """

    def __init__(
        self,
        annotations: AnnotationsSource,
        tfrecords: TFRecordSource,
        *,
        tile_px: int | None = None,
        tile_um: int | float | str | None = None,
        filters: Filters | None = None,
        filter_blank: Iterable[str] = (),
        min_tiles: int = 0,
        splits: str | os.PathLike | None = None,
    ) -> None:
        self.tile_px = tile_px
        self.tile_um = tile_um
        self.splits_path = Path(splits) if splits is not None else None
        self._annotations = load_annotations(annotations)
        found = find_tfrecords(tfrecords, tile_px, tile_um)
        annotated = set(self._annotations["slide"])
        missing = sorted(annotated - set(found))
        if missing:
            log.warning(
                "%d of %d annotated slide(s) have no TFRecord and are left out: %s",
                len(missing),
                len(annotated),
                name_some(missing),
            )
        unannotated = sorted(set(found) - annotated)
        if unannotated:
            log.warning(
                "%d TFRecord(s) have no annotation row and are left out: %s",
                len(unannotated),
                name_some([found[s] for s in unannotated]),
            )
        paths = {s: found[s] for s in sorted(annotated & set(found))}
        tiles = count_tiles(paths.values())
        empty = [s for s, p in paths.items() if tiles[p] == 0]
        if empty:
            log.warning(
                "%d TFRecord(s) hold no tiles and are left out: %s",
                len(empty),
                name_some([paths[s] for s in empty]),
            )
        self._paths = {s: p for s, p in paths.items() if tiles[p] > 0}
        self._tiles = {p: tiles[p] for p in self._paths.values()}
        self._filters = normalize_filters(filters)
        self._blank_columns = tuple(dict.fromkeys(filter_blank))
        self._min_tiles = int(min_tiles)
        # What was asked: (strategy, headers, force, proportional) and
        # (max_tiles, strategy, headers, proportional).
        self._balance: tuple[str, tuple[str, ...] | None, bool, bool] | None = None
        self._clip: tuple[int, str | None, tuple[str, ...] | None, bool] | None = None
        self._members  # noqa: B018 - evaluate now so a bad filter column fails here

    # ---- derived state (computed once per immutable instance) ----

    @cached_property
    def _members(self) -> pd.DataFrame:
        """Annotation rows of the member slides, sorted by slide."""
        with_tfrecords = self._annotations[self._annotations["slide"].isin(self._paths)]
        kept = apply_filters(with_tfrecords, self._filters, self._blank_columns)
        if self._min_tiles:
            enough = kept["slide"].map(lambda s: self._tiles[self._paths[s]] >= self._min_tiles)
            few = list(kept["slide"][~enough])
            if few:
                log.info(
                    "min_tiles=%d removed %d slide(s): %s",
                    self._min_tiles,
                    len(few),
                    name_some(few),
                )
            kept = kept[enough.astype(bool)]
        return kept.sort_values("slide").reset_index(drop=True)

    def _tile_table(self, clipped: bool) -> pd.DataFrame:
        """Member TFRecords (index: path) with columns ``slide``, ``patient``, ``tiles``."""
        members = self._members
        paths = [self._paths[s] for s in members["slide"]]
        counts = self.clips if clipped and self.clips is not None else self._tiles
        return pd.DataFrame(
            {
                "slide": members["slide"].to_numpy(),
                "patient": members["patient"].to_numpy(),
                "tiles": [counts[p] for p in paths],
            },
            index=pd.Index(paths, name="tfrecord"),
        )

    def _categories(self, headers: Sequence[str]) -> pd.Series:
        by_slide = category_of_slides(self._members, headers)
        return pd.Series(
            by_slide.to_numpy(), index=[self._paths[s] for s in by_slide.index], name="category"
        )

    @cached_property
    def clips(self) -> dict[str, int] | None:
        """Maximum tiles read per TFRecord path, or None when unclipped."""
        if self._clip is None:
            return None
        max_tiles, strategy, headers, proportional = self._clip
        categories = self._categories(headers) if strategy == "category" and headers else None
        return clip_counts(
            self._tile_table(clipped=False),
            max_tiles,
            strategy,
            categories,
            proportional=proportional,
        )

    @cached_property
    def prob_weights(self) -> dict[str, float] | None:
        """Sampling probability per TFRecord path, or None for uniform sampling."""
        if self._balance is None:
            return None
        strategy, headers, force, proportional = self._balance
        categories = None
        if strategy == "category":
            if not headers:
                raise DatasetError("category balancing needs headers (the outcome columns)")
            floats = [h for h in headers if is_float_column(checked_values(self._members, h))]
            if floats and not force:
                raise DatasetError(
                    f"category balancing on numeric header(s) {floats}: pass force=True to "
                    "treat them as categories"
                )
            categories = self._categories(headers)
        return balance_weights(
            self._tile_table(clipped=True), strategy, categories, proportional=proportional
        )

    # ---- information ----

    @property
    def annotations(self) -> pd.DataFrame:
        """The member slides' annotation rows (a copy)."""
        return self._members.copy()

    def slides(self) -> list[str]:
        """Member slide names, sorted."""
        return list(self._members["slide"])

    def patients(self) -> dict[str, str]:
        """Slide → patient for the member slides."""
        return dict(zip(self._members["slide"], self._members["patient"], strict=True))

    def tfrecords(self) -> list[str]:
        """TFRecord paths of the member slides, in slide order."""
        return [self._paths[s] for s in self._members["slide"]]

    def manifest(self) -> dict[str, dict[str, int]]:
        """TFRecord path → ``{"total": tiles, "clipped": tiles read}`` (Slideflow's manifest)."""
        clips = self.clips or {}
        return {
            p: {"total": self._tiles[p], "clipped": clips.get(p, self._tiles[p])}
            for p in self.tfrecords()
        }

    @property
    def num_tiles(self) -> int:
        """Tiles read per pass: the sum of clipped counts."""
        return sum(m["clipped"] for m in self.manifest().values())

    def labels(
        self, headers: str | Sequence[str], use_float: UseFloat = False
    ) -> tuple[dict[str, Label], list | dict[str, list]]:
        """(slide → label, unique labels) for outcome column(s); see `jaxwsi.dataset.labels`."""
        return slide_labels(self._members, headers, use_float)

    def __len__(self) -> int:
        return len(self._members)

    def __repr__(self) -> str:
        return (
            f"Dataset(slides={len(self)}, tiles={self.num_tiles}, tile_px={self.tile_px}, "
            f"tile_um={self.tile_um}, filtered_columns={sorted(self._filters)}, "
            f"balance={self._balance}, "
            f"clip={self._clip})"
        )

    # ---- immutable transformations ----

    def _derive(self, **changes: Any) -> Dataset:
        derived = copy.copy(self)
        derived.__dict__.pop("_members", None)
        derived.__dict__.pop("clips", None)
        derived.__dict__.pop("prob_weights", None)
        for name, value in changes.items():
            setattr(derived, name, value)
        return derived

    def filter(self, filters: Filters | None = None, *, min_tiles: int | None = None) -> Dataset:
        """Keep slides whose column values are among the allowed ones (narrowing any filter
        already on that column) and, if given, with at least ``min_tiles`` tiles."""
        merged = dict(self._filters)
        for column, allowed in normalize_filters(filters).items():
            merged[column] = (
                tuple(v for v in merged[column] if v in allowed) if column in merged else allowed
            )
        derived = self._derive(
            _filters=merged, _min_tiles=self._min_tiles if min_tiles is None else int(min_tiles)
        )
        derived._members  # noqa: B018 - evaluate now so a bad column fails here
        return derived

    def filter_blank(self, columns: str | Iterable[str]) -> Dataset:
        """Leave out slides with a blank value in any of ``columns``."""
        columns = [columns] if isinstance(columns, str) else list(columns)
        derived = self._derive(
            _blank_columns=tuple(dict.fromkeys((*self._blank_columns, *columns)))
        )
        derived._members  # noqa: B018 - evaluate now so a bad column fails here
        return derived

    def remove_filter(self, *columns: str) -> Dataset:
        """Drop the value and blank filters on these columns."""
        unknown = [c for c in columns if c not in self._filters and c not in self._blank_columns]
        if unknown:
            raise DatasetError(f"no filter on column(s) {unknown}")
        return self._derive(
            _filters={c: v for c, v in self._filters.items() if c not in columns},
            _blank_columns=tuple(c for c in self._blank_columns if c not in columns),
        )

    def clear_filters(self) -> Dataset:
        """The dataset without value filters, blank filters or min_tiles."""
        return self._derive(_filters={}, _blank_columns=(), _min_tiles=0)

    def balance(
        self,
        headers: str | Sequence[str] | None = None,
        strategy: str | None = "category",
        *,
        force: bool = False,
        proportional: bool = False,
    ) -> Dataset:
        """Sampling weights per TFRecord: ``tile``, ``slide``, ``patient``, ``category`` (needs
        ``headers``; ``force`` allows numeric ones) or ``none``; formulas in
        `jaxwsi.dataset.balance`. ``proportional`` gives Slideflow's documented (not coded)
        behaviour for ``patient`` and ``category``: tile-proportional within each group."""
        name = check_balance_strategy(strategy)
        if name == "none":
            return self.unbalance()
        header_tuple = tuple(as_headers(headers)) if headers is not None else None
        derived = self._derive(_balance=(name, header_tuple, force, proportional))
        derived.prob_weights  # noqa: B018 - evaluate now so bad input fails here
        return derived

    def unbalance(self) -> Dataset:
        """The dataset with uniform sampling over TFRecords."""
        return self._derive(_balance=None)

    def clip(
        self,
        max_tiles: int = 0,
        strategy: str | None = None,
        headers: str | Sequence[str] | None = None,
        *,
        proportional: bool = False,
    ) -> Dataset:
        """Cap the tiles read per TFRecord: ``max_tiles`` and/or a strategy ``slide``,
        ``patient``, ``category`` (needs ``headers``); formulas in `jaxwsi.dataset.clip`.
        ``proportional`` with ``patient`` caps each patient's total instead of each TFRecord
        (Slideflow's documented behaviour). ``clip(0)`` is `unclip`."""
        check_clip_strategy(strategy)
        if strategy == "category" and not headers:
            raise DatasetError("category clipping needs headers (the outcome columns)")
        if not max_tiles and strategy is None:
            return self.unclip()
        header_tuple = tuple(as_headers(headers)) if headers is not None else None
        derived = self._derive(_clip=(int(max_tiles), strategy, header_tuple, proportional))
        emptied = [p for p, n in (derived.clips or {}).items() if n == 0]
        if emptied:
            log.warning(
                "clipping leaves %d TFRecord(s) with no tiles to read: %s",
                len(emptied),
                name_some(emptied),
            )
        return derived

    def unclip(self) -> Dataset:
        """The dataset reading every tile of every TFRecord."""
        return self._derive(_clip=None)

    def with_slides(self, slides: Iterable[str]) -> Dataset:
        """Only these slides (intersected with the current members)."""
        return self.filter({"slide": sorted(set(slides))})

    # ---- splits ----

    def split(
        self,
        headers: str | Sequence[str] | None = None,
        strategy: str = "k-fold",
        *,
        k_fold: int = 3,
        val_fraction: float | None = None,
        seed: int = 0,
        use_float: bool = False,
        manual_column: str | None = None,
        site_column: str = "site",
        splits: str | os.PathLike | None = None,
    ) -> list[tuple[Dataset, Dataset]]:
        """Patient-level (training, validation) datasets, one pair per fold.

        Strategies (see `jaxwsi.dataset.splits`): ``k-fold`` (stratified by the categories of
        ``headers`` unless ``use_float``), ``k-fold-manual`` (folds from ``manual_column``),
        ``k-fold-preserved-site`` (whole sites of ``site_column`` per fold), ``bootstrap``
        (``k_fold`` rounds), ``fixed`` (``val_fraction``), ``none``. With a splits.json path
        (``splits`` or the dataset's default) a saved matching split is reused, otherwise the new
        one is appended there (``none`` is not saved).
        """
        check_split_strategy(strategy)
        if strategy == "none":
            return [(self, self.with_slides([]))]
        if strategy == "k-fold-manual" and manual_column is None:
            raise SplitError("k-fold-manual needs manual_column (the annotation column)")
        header_list = as_headers(headers) if headers is not None else []
        patients = patient_table(
            self._members,
            header_list,
            use_float=use_float,
            manual_column=manual_column if strategy == "k-fold-manual" else None,
            site_column=site_column if strategy == "k-fold-preserved-site" else None,
        )
        folds = split_patients(
            patients,
            strategy,
            k_fold=k_fold,
            val_fraction=val_fraction,
            seed=seed,
            headers=header_list,
            classes=class_names(self._members, header_list, use_float),
            splits_path=Path(splits) if splits is not None else self.splits_path,
        )
        for i, (training, validation) in enumerate(folds):
            log.info(
                "fold %d: %d training and %d validation patient(s)",
                i + 1,
                len(training),
                len(validation),
            )
        return [
            (
                self.with_slides(s for p in training for s in patients[p]["slides"]),
                self.with_slides(s for p in validation for s in patients[p]["slides"]),
            )
            for training, validation in folds
        ]

    # ---- loaders ----

    def _loader_arguments(self, labels: LabelsArg, use_float: UseFloat) -> dict[str, Any]:
        paths = self.tfrecords()
        if not paths:
            raise DatasetError("the dataset has no TFRecords to load")
        if labels is None or isinstance(labels, Mapping):
            slide_label = labels
        else:
            slide_label = self.labels(labels, use_float)[0]
        weights = self.prob_weights
        clips = self.clips
        return {
            "paths": paths,
            "labels": slide_label,
            "weights": [weights[p] for p in paths] if weights is not None else None,
            "clip": [clips[p] for p in paths] if clips is not None else None,
        }

    def interleaver(
        self, labels: LabelsArg = None, *, use_float: UseFloat = False, **options: Any
    ) -> Interleaver:
        """A `jaxwsi.io.Interleaver` over this dataset's TFRecords, with its weights and clips.

        ``labels`` is outcome header(s) (labels from `labels`) or a ready slide → label mapping;
        ``options`` go to the Interleaver (batch_size, seed, shuffle, rank, ...)."""
        return Interleaver(**self._loader_arguments(labels, use_float), **options)

    def grain(
        self, labels: LabelsArg = None, *, use_float: UseFloat = False, **options: Any
    ) -> InterleavedDataset:
        """A Grain ``IterDataset`` (`jaxwsi.pipeline.interleaved_dataset`) of batches from this
        dataset, with the same arguments as `interleaver`."""
        from jaxwsi.pipeline.grain_source import interleaved_dataset

        return interleaved_dataset(**self._loader_arguments(labels, use_float), **options)
