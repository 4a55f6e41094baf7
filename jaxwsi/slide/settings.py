"""`ExtractionSettings`: every setting that changes the tiles `extract_tiles` writes, in one place.

Each field's default, help text and allowed values live here only: `extract_tiles` takes the
object whole (or its fields as keywords), ``jaxwsi extract`` generates one option per field
(`jaxwsi.cli.extract`), the extraction report has one column per field and the output folder
records them all in ``extraction_settings.json`` (`record`), so a second run with other settings
into the same folder is refused (`check_folder_settings`) instead of mixing two kinds of tiles.

To add a setting: add a field with ``metadata=_help("...")`` (and ``choices=`` / ``flag=``) and
validate it in ``__post_init__``; the keyword, the CLI option and the report column follow.
"""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jaxwsi.atomic import write_text_atomic
from jaxwsi.errors import JaxwsiError
from jaxwsi.slide.filters import FILTER_RULES, check_filter_rule
from jaxwsi.slide.grid import LEVEL_RULES, check_level_rule, parse_magnification, tile_size_label
from jaxwsi.slide.qc import QC_METHODS, QCCallable, check_qc
from jaxwsi.slide.roi import ROI_METHODS

IMAGE_FORMATS = ("jpg", "png")
SETTINGS_FILE = "extraction_settings.json"


def _help(text: str, **cli: Any) -> dict[str, Any]:
    """Field metadata: the help text and CLI details (``choices``, ``flag``, ``type``)."""
    return {"help": text, **cli}


@dataclass(frozen=True)
class ExtractionSettings:
    """Everything that decides which tiles a slide gives and how they are encoded (picklable)."""

    tile_px: int = field(metadata=_help("tile side in pixels"))
    tile_um: int | float | str = field(
        metadata=_help("tile side in µm (e.g. 302 or 302.5) or a magnification ('10x')")
    )
    stride_div: int = field(default=1, metadata=_help("grid stride = tile side / this"))
    mpp: float | None = field(
        default=None,
        metadata=_help("µm per level-0 pixel (default: the slide's metadata)", type=float),
    )
    roi_method: str = field(
        default="auto",
        metadata=_help(
            "tiles inside or outside the ROIs; auto: inside where a slide has ROIs, else all; "
            "ignore: ROIs are only drawn",
            choices=ROI_METHODS,
        ),
    )
    use_edge_tiles: bool = field(
        default=False,
        metadata=_help(
            "keep tiles that cross the slide's edge (padded white)", flag="--edge-tiles"
        ),
    )
    whitespace_fraction: float = field(
        default=1.0, metadata=_help("drop tiles with more than this fraction of white pixels")
    )
    whitespace_threshold: float = field(
        default=230.0, metadata=_help("a pixel is white when its mean RGB is above this")
    )
    grayspace_fraction: float = field(
        default=0.6, metadata=_help("drop tiles with more than this fraction of gray pixels")
    )
    grayspace_threshold: float = field(
        default=0.05, metadata=_help("a pixel is gray when its HSV saturation is below this")
    )
    qc: str | QCCallable | None = field(
        default=None,
        metadata=_help(
            "slide-level QC on the thumbnail (default: none; in Python also a callable)",
            choices=QC_METHODS,
            type=str,
        ),
    )
    qc_fraction: float = field(
        default=0.6, metadata=_help("drop tiles with more than this fraction masked by QC")
    )
    img_format: str = field(
        default="jpg", metadata=_help("tile image format", choices=IMAGE_FORMATS)
    )
    jpeg_quality: int = field(default=95, metadata=_help("JPEG quality (1-100)"))
    seed: int = field(default=0, metadata=_help("seed of the per-slide tile shuffle"))
    level_rule: str = field(
        default="direct",
        metadata=_help(
            "pyramid level: direct reads a level that matches exactly; slideflow the finer one",
            choices=LEVEL_RULES,
        ),
    )
    filter_rule: str = field(
        default="thumbnail",
        metadata=_help(
            "pixels the filters judge: the thumbnail, or Slideflow's per-tile crops",
            choices=FILTER_RULES,
        ),
    )

    def __post_init__(self) -> None:
        px = self.tile_px
        if isinstance(px, bool) or not isinstance(px, numbers.Integral) or px < 1:
            raise ValueError(f"tile_px must be a whole number >= 1, got {px!r}")
        object.__setattr__(self, "tile_px", int(px))  # numpy integers pickle and print as int
        if self.stride_div < 1:
            raise ValueError(f"stride_div must be at least 1, got {self.stride_div}")
        parse_magnification(self.tile_um)
        if self.mpp is not None and not self.mpp > 0:
            raise ValueError(f"mpp must be positive, got {self.mpp}")
        check_qc(self.qc)
        check_level_rule(self.level_rule)
        check_filter_rule(self.filter_rule)
        for name in ("whitespace_fraction", "grayspace_fraction", "qc_fraction"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.roi_method not in ROI_METHODS:
            raise ValueError(f"roi_method must be one of {ROI_METHODS}, got {self.roi_method!r}")
        if self.img_format not in IMAGE_FORMATS:
            raise ValueError(f"img_format must be one of {IMAGE_FORMATS}, got {self.img_format!r}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")

    @property
    def label(self) -> str:
        """The output sub-folder: ``299px_302um`` or ``299px_10x``."""
        return tile_size_label(self.tile_px, self.tile_um)

    def record(self) -> dict[str, Any]:
        """Every setting as a JSON value (a QC callable by its ``module.qualname``)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        if callable(self.qc):
            module = getattr(self.qc, "__module__", "?")
            values["qc"] = f"{module}.{getattr(self.qc, '__qualname__', type(self.qc).__name__)}"
        return values


def setting_names() -> tuple[str, ...]:
    """The names of every setting, in field order (report columns, CLI options)."""
    return tuple(f.name for f in fields(ExtractionSettings))


class SettingsMismatchError(JaxwsiError, ValueError):
    """An output folder holds tiles extracted with other settings than the ones asked for."""


def check_folder_settings(folder: Path, settings: ExtractionSettings) -> None:
    """Record ``settings`` in ``folder/extraction_settings.json``, or check them against the
    record already there: a folder holds tiles of one set of settings only."""
    path = folder / SETTINGS_FILE
    wanted = json.loads(json.dumps(settings.record()))  # as read back (tuples → lists)
    if not path.is_file():
        write_text_atomic(path, json.dumps(wanted, indent=1) + "\n")
        return
    try:
        recorded = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(recorded, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise SettingsMismatchError(f"{path}: unreadable settings record ({error})") from None
    differing = [
        f"{name}={recorded.get(name)!r} there, {wanted[name]!r} asked"
        for name in wanted
        if name in recorded and not _same(recorded[name], wanted[name])
    ]
    if differing:
        raise SettingsMismatchError(
            f"{folder} holds tiles extracted with other settings ({'; '.join(differing)}): "
            "extract into another --outdir, or delete this folder to start again"
        )
    if any(name not in recorded for name in wanted):  # a record from an older version
        write_text_atomic(path, json.dumps({**wanted, **recorded}, indent=1) + "\n")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)  # 302 and 302.0 are the same tile size
    return a == b
