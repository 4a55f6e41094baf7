"""The segmentation settings: one YAML file in the Allen Cell Segmenter's layout, with EPySeg's
options as extra keys; every field has its one default here.

Minimal file (everything else defaults)::

    model: {name: unet2d}
    nchannel: 1
    nclass: [2]
    size_in: [256, 256]
    size_out: [256, 256]
    checkpoint_dir: runs/nuclei
    loader: {datafolder: data/nuclei, batch_size: 8, PatchPerBuffer: 64, epoch_shuffle: 5,
             NumWorkers: 1}
    loss: {name: bce_jaccard}
    learning_rate: 0.001
    epochs: 30

`load_config` checks every key and value and raises `ConfigError` naming the file and the key
(``loader.batch_size``); ``model`` keys other than ``name`` are the model factory's keyword
options (``depth``, ``features``, ``zoom_ratio``), checked against its signature.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jaxwsi.errors import JaxwsiError

Auto = Literal["auto"]


class ConfigError(JaxwsiError, ValueError):
    """A segmentation configuration with a missing, unknown or invalid key."""


@dataclass(frozen=True)
class ModelConfig:
    """``name``: a registered segmentation model; other keys: the factory's options."""

    name: str = "unet2d"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoaderConfig:
    """Training patches: ``PatchPerBuffer`` random patches spread evenly over the images, redrawn
    (new crops, new augmentations) every ``epoch_shuffle`` epochs; ``NumWorkers`` threads draw
    them. ``batch_size: auto`` measures the largest batch that fits the device."""

    name: str = "default"
    datafolder: str = ""
    batch_size: int | Auto = 8
    PatchPerBuffer: int = 64
    epoch_shuffle: int = 5
    NumWorkers: int = 1


@dataclass(frozen=True)
class LossConfig:
    """``name`` one of jaccard, dice, bce, bce_jaccard, mse, mae, aux; ``loss_weight`` one
    weight per output head (default 1 each); labels equal to ``ignore_index`` are ignored."""

    name: str = "bce_jaccard"
    loss_weight: list[float] | None = None
    ignore_index: int | None = None


@dataclass(frozen=True)
class ValidationConfig:
    """Held-out images: ``leaveout`` (indices into the sorted image list) or, when empty, the
    top-level ``validation_split`` fraction; ``patches`` fixed validation patches from them."""

    leaveout: list[int] = field(default_factory=list)
    patches: int = 16
    preview: int = 4


@dataclass(frozen=True)
class NormalizationConfig:
    """Per image and channel: clip outliers (``clip``: high, low, both or none, at the fraction
    ``clip_fraction`` of each tail), then rescale by ``method``: minmax → [0, 1], max (x / max),
    standard (zero mean, unit variance), percentile (``percentiles`` → [0, 1]) or none."""

    method: Literal["minmax", "max", "standard", "percentile", "none"] = "minmax"
    clip: Literal["both", "high", "low", "none"] = "both"
    clip_fraction: float = 0.001
    percentiles: list[float] = field(default_factory=lambda: [2.0, 99.8])


@dataclass(frozen=True)
class AugmentConfig:
    """Random augmentations of training patches (2D and 3D; geometry in xy only for 3D):
    ``flip`` (each spatial axis, p = 0.5), ``rotate90`` (quarter turns in xy, square patches),
    ``intensity`` (gain in [1 − i, 1 + i], offset in [−i, i]), ``noise``
    (Gaussian, σ up to this times the patch's std), ``elastic`` (smooth displacements of up to
    this many pixels, σ = ``elastic_sigma``)."""

    flip: bool = True
    rotate90: bool = True
    intensity: float = 0.0
    noise: float = 0.0
    elastic: float = 0.0
    elastic_sigma: float = 8.0


@dataclass(frozen=True)
class PredictionConfig:
    """Sliding-window prediction: ``tile`` (default: ``size_in``) windows overlapping by
    ``overlap``, blended with a Gaussian (``blend: gaussian``) or evenly (``constant``), averaged
    over flips when ``tta``; ``batch_size`` windows per device call."""

    tile: list[int] | None = None
    overlap: float = 0.25
    blend: Literal["gaussian", "constant"] = "gaussian"
    tta: bool = False
    batch_size: int = 8


@dataclass(frozen=True)
class SegmentConfig:
    """Everything a segmentation run needs (see the module docstring)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    nchannel: int = 1
    nclass: list[int] = field(default_factory=lambda: [2])
    size_in: list[int] | Auto = field(default_factory=lambda: [256, 256])
    size_out: list[int] | Auto | None = None
    checkpoint_dir: str = "runs/segment"
    resume: str | None = None
    pretrained: str | None = None
    pretrained_settings: Literal["recompile", "keep"] = "recompile"
    optimizer: str = "adam"
    learning_rate: float = 0.001
    weight_decay: float = 0.0
    loss: LossConfig = field(default_factory=LossConfig)
    metrics: list[str] = field(default_factory=lambda: ["iou", "dice"])
    epochs: int = 100
    steps_per_epoch: int = -1
    save_every_n_epoch: int = 1
    keep_n_best: int = 1
    load_at_end: Literal["best", "last"] = "best"
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    validation_split: float = 0.0
    augmentations: AugmentConfig = field(default_factory=AugmentConfig)
    normalization: NormalizationConfig = field(default_factory=NormalizationConfig)
    prediction: PredictionConfig = field(default_factory=PredictionConfig)
    seed: int = 0

    @property
    def spatial_dims(self) -> int | None:
        """2 or 3 (None while ``size_in`` is auto and no model rule decides)."""
        if isinstance(self.size_in, list):
            return len(self.size_in)
        return 3 if self.model.name in ("unet_xy", "unet_xy_zoom") else 2

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain YAML/JSON values (model options flattened into ``model``)."""
        data = dataclasses.asdict(self)
        data["model"] = {"name": self.model.name, **self.model.options}
        return data

    def replace(self, **changes: Any) -> SegmentConfig:
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------- validation


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _convert(tp: Any, value: Any, key: str) -> Any:
    """``value`` checked against the annotation ``tp``; raises ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        for option in typing.get_args(tp):
            try:
                return _convert(option, value, key)
            except ConfigError:
                pass
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ConfigError(f"{key}: expected one of {_type_name(tp)}, got {value!r}")
        return value
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return None
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {value!r}")
        return dict(value)
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type, tp), value, f"{key}.")
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config annotation {tp!r}")  # a bug here, not in the input


def _build(cls: type, data: Any, prefix: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if cls is ModelConfig:
        data = {"name": data.get("name", ModelConfig.name), "options": _without(data, "name")}
    unknown = [k for k in data if k not in names]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(str(key), names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(names)}"
        raise ConfigError(f"unknown key {prefix}{key!r}{hint}")
    values = {name: _convert(hints[name], data[name], f"{prefix}{name}") for name in data}
    return cls(**values)


def _without(data: dict, key: str) -> dict:
    return {k: v for k, v in data.items() if k != key}


def _check(config: SegmentConfig) -> None:
    """Checks across fields that types alone cannot express."""
    from jaxwsi.models.registry import get
    from jaxwsi.segment.losses import LOSSES, METRICS
    from jaxwsi.train.optim import OPTIMIZERS

    def positive(key: str, value: int | float, minimum: float = 1) -> None:
        if value < minimum:
            raise ConfigError(f"{key}: must be >= {minimum}, got {value}")

    try:
        factory = get(config.model.name, kind="segmentation")
    except KeyError as e:
        raise ConfigError(f"model.name: {e.args[0]}") from None
    import inspect

    params = inspect.signature(factory).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    reserved = {"nchannel", "nclass", "rngs"}
    for key in config.model.options:
        if key in reserved or (key not in params and not takes_any):
            allowed = sorted(set(params) - reserved)
            raise ConfigError(
                f"model.{key}: not an option of model {config.model.name!r} "
                f"(its options: {', '.join(allowed) or 'none'})"
            )
    positive("nchannel", config.nchannel)
    if not config.nclass:
        raise ConfigError("nclass: needs one entry per output head, e.g. [2]")
    for i, n in enumerate(config.nclass):
        positive(f"nclass[{i}]", n)
    for key in ("size_in", "size_out"):
        value = getattr(config, key)
        if isinstance(value, list):
            if len(value) not in (2, 3):
                raise ConfigError(f"{key}: 2 (y, x) or 3 (z, y, x) sizes, got {value}")
            for i, s in enumerate(value):
                positive(f"{key}[{i}]", s)
    if (
        isinstance(config.size_in, list)
        and isinstance(config.size_out, list)
        and len(config.size_in) != len(config.size_out)
    ):
        raise ConfigError(f"size_out: {config.size_out} has not the rank of {config.size_in}")
    if config.size_in == "auto" and isinstance(config.size_out, list):
        raise ConfigError("size_out: must be auto (or left out) when size_in is auto")
    if config.loss.name not in LOSSES:
        raise ConfigError(f"loss.name: {config.loss.name!r} is not one of {', '.join(LOSSES)}")
    if config.loss.loss_weight is not None and len(config.loss.loss_weight) != len(config.nclass):
        raise ConfigError(
            f"loss.loss_weight: one weight per output head ({len(config.nclass)} from nclass), "
            f"got {config.loss.loss_weight}"
        )
    for metric in config.metrics:
        if metric not in METRICS:
            raise ConfigError(f"metrics: {metric!r} is not one of {', '.join(METRICS)}")
    if config.optimizer.lower() not in OPTIMIZERS:
        raise ConfigError(f"optimizer: {config.optimizer!r} is not one of {', '.join(OPTIMIZERS)}")
    positive("learning_rate", config.learning_rate, 0)
    positive("weight_decay", config.weight_decay, 0)
    positive("epochs", config.epochs)
    if config.steps_per_epoch == 0 or config.steps_per_epoch < -1:
        raise ConfigError(
            f"steps_per_epoch: -1 (the whole buffer) or >= 1, got {config.steps_per_epoch}"
        )
    positive("save_every_n_epoch", config.save_every_n_epoch)
    positive("keep_n_best", config.keep_n_best)
    if not config.loader.datafolder:
        raise ConfigError(
            "loader.datafolder: required (a folder with input/ and output/, or "
            "img_NNN.tif with img_NNN_GT.tif)"
        )
    if config.loader.batch_size != "auto":
        positive("loader.batch_size", config.loader.batch_size)
    positive("loader.PatchPerBuffer", config.loader.PatchPerBuffer)
    positive("loader.epoch_shuffle", config.loader.epoch_shuffle)
    positive("loader.NumWorkers", config.loader.NumWorkers)
    if not 0.0 <= config.validation_split < 1.0:
        raise ConfigError(f"validation_split: in [0, 1), got {config.validation_split}")
    positive("validation.patches", config.validation.patches)
    positive("validation.preview", config.validation.preview, 0)
    norm = config.normalization
    if not 0.0 <= norm.clip_fraction < 0.5:
        raise ConfigError(f"normalization.clip_fraction: in [0, 0.5), got {norm.clip_fraction}")
    if len(norm.percentiles) != 2 or not 0 <= norm.percentiles[0] < norm.percentiles[1] <= 100:
        raise ConfigError(
            f"normalization.percentiles: [low, high] in 0..100, got {norm.percentiles}"
        )
    for key in ("intensity", "noise", "elastic"):
        positive(f"augmentations.{key}", getattr(config.augmentations, key), 0)
    positive("augmentations.elastic_sigma", config.augmentations.elastic_sigma, 0.5)
    pred = config.prediction
    if not 0.0 <= pred.overlap < 1.0:
        raise ConfigError(f"prediction.overlap: in [0, 1), got {pred.overlap}")
    positive("prediction.batch_size", pred.batch_size)
    if (
        pred.tile is not None
        and isinstance(config.size_in, list)
        and len(pred.tile) != len(config.size_in)
    ):
        raise ConfigError(f"prediction.tile: {pred.tile} has not the rank of size_in")


def config_from_dict(data: Any, source: str = "config") -> SegmentConfig:
    """A checked `SegmentConfig` from parsed YAML/JSON; errors start with ``source``."""
    try:
        config = _build(SegmentConfig, data, "")
        _check(config)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    return config


def load_config(path: str | Path) -> SegmentConfig:
    """Read and check a YAML settings file (see the module docstring)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    return config_from_dict(data, str(path))
