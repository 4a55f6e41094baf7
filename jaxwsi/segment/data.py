"""Reading a segmentation training folder: image / label (/ weight) triples.

Two layouts (``loader.datafolder``):

- paired folders: ``input/`` and ``output/`` holding the same file names (tif, tiff, png, jpg,
  jpeg), plus an optional ``mask/`` (or ``costmap/``) with the same names: an ROI mask or cost
  map, 0 = ignored;
- the Allen Cell layout, one flat folder: ``img_NNN.tif`` (raw), ``img_NNN_GT.tif`` (labels) and
  an optional cost map ``img_NNN_CM.tif`` (0 = ignored). ``.ome.tif``/``.tiff`` work too.

Images are 2D (Y, X) or 3D (Z, Y, X), optionally with a trailing channel axis, uint8/uint16 or
float; labels are class indices of the image's spatial shape (for a 2-class head any non-zero
label is foreground, so instance label images work as they are). Mismatched names, shapes or
channel counts raise `SegmentDataError` listing every offending file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jaxwsi.errors import JaxwsiError
from jaxwsi.segment.config import NormalizationConfig
from jaxwsi.segment.normalize import normalize

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
MASK_FOLDERS = ("mask", "costmap")


class SegmentDataError(JaxwsiError, ValueError):
    """A training folder whose files are missing, unpaired or of mismatched shapes."""


@dataclass(frozen=True)
class Sample:
    """One training image: paths of its raw image, labels and optional weight map."""

    name: str
    image: Path
    label: Path
    weight: Path | None = None


def read_image(path: Path) -> np.ndarray:
    """Pixels of a tif (tifffile) or png/jpg (Pillow) as a numpy array."""
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            return np.asarray(tifffile.imread(path))
        from PIL import Image

        with Image.open(path) as image:
            return np.asarray(image)
    except FileNotFoundError:
        raise SegmentDataError(f"{path}: no such file") from None
    except Exception as e:  # a corrupt or unsupported file: say which
        raise SegmentDataError(f"{path}: cannot read the image: {e}") from e


def _images(folder: Path) -> dict[str, Path]:
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    }


def _stem(name: str) -> str:
    for suffix in (".ome.tiff", ".ome.tif", *IMAGE_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def _paired(root: Path) -> list[Sample]:
    inputs, outputs = _images(root / "input"), _images(root / "output")
    masks_dir = next((root / m for m in MASK_FOLDERS if (root / m).is_dir()), None)
    masks = _images(masks_dir) if masks_dir else {}
    problems = []
    only_in = sorted(set(inputs) - set(outputs))
    only_out = sorted(set(outputs) - set(inputs))
    if only_in:
        problems.append(f"in input/ but not output/: {', '.join(only_in)}")
    if only_out:
        problems.append(f"in output/ but not input/: {', '.join(only_out)}")
    if masks_dir is not None:
        only_mask = sorted(set(masks) - set(inputs))
        no_mask = sorted(set(inputs) - set(masks))
        if only_mask:
            problems.append(f"in {masks_dir.name}/ but not input/: {', '.join(only_mask)}")
        if no_mask:
            problems.append(f"in input/ but not {masks_dir.name}/: {', '.join(no_mask)}")
    if problems:
        raise SegmentDataError(
            f"{root}: input/ and output/ must hold the same file names ({len(inputs)} in "
            f"input/, {len(outputs)} in output/); " + "; ".join(problems)
        )
    return [Sample(_stem(name), inputs[name], outputs[name], masks.get(name)) for name in inputs]


def _allen(root: Path) -> list[Sample]:
    files = _images(root)
    stems = {_stem(n): p for n, p in files.items()}
    labels = {s[: -len("_GT")]: p for s, p in stems.items() if s.endswith("_GT")}
    costs = {s[: -len("_CM")]: p for s, p in stems.items() if s.endswith("_CM")}
    raws = {s: p for s, p in stems.items() if not s.endswith(("_GT", "_CM"))}
    problems = []
    if sorted(set(labels) - set(raws)):
        problems.append(f"labels without an image: {', '.join(sorted(set(labels) - set(raws)))}")
    if sorted(set(raws) - set(labels)):
        problems.append(f"images without _GT labels: {', '.join(sorted(set(raws) - set(labels)))}")
    if sorted(set(costs) - set(raws)):
        problems.append(f"cost maps without an image: {', '.join(sorted(set(costs) - set(raws)))}")
    if problems:
        raise SegmentDataError(
            f"{root} (img_NNN / img_NNN_GT / img_NNN_CM): " + "; ".join(problems)
        )
    return [Sample(s, raws[s], labels[s], costs.get(s)) for s in sorted(raws)]


def find_samples(datafolder: str | Path) -> list[Sample]:
    """The training samples of ``datafolder`` (either layout, see the module docstring)."""
    root = Path(datafolder)
    if not root.is_dir():
        raise SegmentDataError(f"{root}: loader.datafolder is not a folder")
    if (root / "input").is_dir() or (root / "output").is_dir():
        if not ((root / "input").is_dir() and (root / "output").is_dir()):
            raise SegmentDataError(f"{root}: needs both input/ and output/ folders")
        samples = _paired(root)
    else:
        samples = _allen(root)
    if not samples:
        raise SegmentDataError(
            f"{root}: no training images (expected input/ + output/ with the same names, or "
            "img_NNN.tif + img_NNN_GT.tif)"
        )
    return samples


def with_channels(image: np.ndarray, spatial_dims: int, nchannel: int, path: Path) -> np.ndarray:
    """``image`` as (*spatial, C): a trailing channel axis added or checked against nchannel."""
    if image.ndim == spatial_dims:
        image = image[..., None]
    if image.ndim != spatial_dims + 1:
        raise SegmentDataError(
            f"{path}: shape {image.shape} is not {spatial_dims}D (with an optional channel axis)"
        )
    if image.shape[-1] != nchannel:
        raise SegmentDataError(
            f"{path}: {image.shape[-1]} channels (shape {image.shape}), nchannel is {nchannel}"
        )
    return image


@dataclass
class LoadedSample:
    """One sample in memory: ``image`` float32 (*spatial, C) normalized, ``label`` the class
    index int32 (*spatial), ``weight`` float32 (*spatial; 0 = ignored)."""

    name: str
    image: np.ndarray
    label: np.ndarray
    weight: np.ndarray


def load_samples(
    samples: Sequence[Sample],
    *,
    spatial_dims: int,
    nchannel: int,
    nclass: int,
    ignore_index: int | None,
    normalization: NormalizationConfig,
) -> list[LoadedSample]:
    """Read, check and normalize ``samples`` (labels → `class_targets`); every mismatch is
    listed in one error."""
    loaded, problems = [], []
    for sample in samples:
        image = read_image(sample.image)
        label = read_image(sample.label)
        weight = read_image(sample.weight) if sample.weight is not None else None
        try:
            image = with_channels(image, spatial_dims, nchannel, sample.image)
        except SegmentDataError as e:
            problems.append(str(e))
            continue
        spatial = image.shape[:-1]
        if label.ndim == spatial_dims + 1 and label.shape[-1] == 1:
            label = label[..., 0]
        if label.shape != spatial:
            problems.append(
                f"{sample.label}: shape {label.shape}, its image {sample.image.name} is {spatial}"
            )
            continue
        if weight is not None and weight.shape != spatial:
            problems.append(f"{sample.weight}: shape {weight.shape}, its image is {spatial}")
            continue
        if not np.issubdtype(label.dtype, np.integer) and not np.all(label == np.round(label)):
            problems.append(f"{sample.label}: labels must be whole numbers (class indices)")
            continue
        label = label.astype(np.int64)
        if label.min() < 0:
            problems.append(f"{sample.label}: negative labels")
            continue
        weight = np.ones(spatial, np.float32) if weight is None else weight.astype(np.float32)
        if weight.min() < 0:
            problems.append(f"{sample.weight}: negative weights (0 = ignored, 1 = normal)")
            continue
        try:
            target, weight = class_targets(label, weight, nclass, ignore_index, sample.label)
        except SegmentDataError as e:
            problems.append(str(e))
            continue
        loaded.append(LoadedSample(sample.name, normalize(image, normalization), target, weight))
    if problems:
        raise SegmentDataError(f"{len(problems)} bad training file(s): " + "; ".join(problems))
    return loaded


def class_targets(
    label: np.ndarray, weight: np.ndarray, nclass: int, ignore_index: int | None, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(class index, weight) per voxel for a head of ``nclass`` classes: any non-zero label is
    class 1 for a 1- or 2-class head (so instance label images work), else labels must be
    < nclass. Voxels labelled ``ignore_index`` get class 0 and weight 0."""
    ignored = label == ignore_index if ignore_index is not None else np.zeros(label.shape, bool)
    if nclass <= 2:
        target = label > 0
    else:
        bad = (label >= nclass) & ~ignored
        if np.any(bad):
            raise SegmentDataError(
                f"{path}: labels up to {int(label[bad].max())}, but the head has {nclass} classes"
            )
        target = label
    target = np.where(ignored, 0, target).astype(np.int32)
    return target, np.where(ignored, 0.0, weight).astype(np.float32)
