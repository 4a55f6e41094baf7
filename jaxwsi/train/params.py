"""`ModelParams`: every hyperparameter of a tile model, with Slideflow's names and defaults.

One dataclass is the single place of each default; `to_dict`/`from_dict` round-trip through
JSON (``params.json``'s ``hp``, sweep files), `validate` names the field, the value and what is
allowed. Besides Slideflow's fields: ``dtype`` (compute precision; "auto" is bfloat16 on a GPU
and float32 on a CPU; parameters are always float32), ``pretrain`` (a local weights file or
None; nothing is downloaded) and ``seed``.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jaxwsi.errors import JaxwsiError
from jaxwsi.train.losses import (
    AllLossDict,
    ClassificationLossDict,
    RegressionLossDict,
    SurvivalLossDict,
)

POOLINGS = ("max", "avg", "none")
EARLY_STOP_METHODS = ("loss", "accuracy", "manual")
BALANCES = ("auto", "tile", "slide", "patient", "category", "none")
DTYPES = ("auto", "float32", "bfloat16")
MODEL_TYPES = ("classification", "regression", "survival")
AUGMENT_LETTERS = "xyrjbn"


class ModelParamsError(JaxwsiError, ValueError):
    """A hyperparameter with a bad value, or an unknown key in a params dict."""


def _epochs(value: Any) -> list[int]:
    return [value] if isinstance(value, int) and not isinstance(value, bool) else list(value)


@dataclass
class ModelParams:
    """Hyperparameters of a tile model (Slideflow's ``ModelParams``; see the module docstring).

    ``epochs`` is the number of epochs or the list of epochs at which to evaluate and save
    (stored as a list). ``loss`` is a name from `AllLossDict` or a custom
    ``{"type": "classification"|"regression"|"survival", "fn": callable}`` where
    ``fn(outputs [B, n], labels [B], events [B] or None) -> scalar``; in ``to_dict`` the
    callable is written as ``"module:qualname"`` and imported back by `from_dict`.
    """

    tile_px: int = 299
    tile_um: int | str = 302
    epochs: int | list[int] = 3
    toplayer_epochs: int = 0
    model: str = "xception"
    pooling: str = "max"
    loss: str | dict[str, Any] = "sparse_categorical_crossentropy"
    learning_rate: float = 1e-4
    learning_rate_decay: float = 0.0
    learning_rate_decay_steps: int = 100_000
    batch_size: int = 16
    hidden_layers: int = 0
    hidden_layer_width: int = 500
    optimizer: str = "Adam"
    early_stop: bool = False
    early_stop_patience: int = 0
    early_stop_method: str = "loss"
    manual_early_stop_epoch: int | None = None
    manual_early_stop_batch: int | None = None
    training_balance: str = "auto"
    validation_balance: str = "none"
    trainable_layers: int = 0
    l1: float = 0.0
    l2: float = 0.0
    l1_dense: float = 0.0
    l2_dense: float = 0.0
    dropout: float = 0.0
    uq: bool = False
    augment: str | None = "xyrj"
    normalizer: str | None = None
    normalizer_source: str | None = None
    include_top: bool = True
    drop_images: bool = False
    dtype: str = "auto"
    pretrain: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.epochs, int | list | tuple):
            self.epochs = _epochs(self.epochs)
        self.validate()

    # ---- serialization ----

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-compatible values (a custom loss's function as its import path)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        out["epochs"] = list(self.epochs)  # type: ignore[arg-type]
        if isinstance(self.loss, Mapping):
            fn = self.loss["fn"]
            path = fn if isinstance(fn, str) else f"{fn.__module__}:{fn.__qualname__}"
            out["loss"] = {"type": self.loss["type"], "fn": path}
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelParams:
        """The params of a `to_dict` dict; unknown keys are an error naming them."""
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ModelParamsError(
                f"unknown ModelParams key(s) {unknown}; known keys: {', '.join(names)}"
            )
        return cls(**dict(values))

    # ---- checks and derived settings ----

    def validate(self) -> None:
        """Raise `ModelParamsError` naming the field, its value and the allowed values."""

        def bad(name: str, allowed: str) -> ModelParamsError:
            return ModelParamsError(
                f"ModelParams.{name} = {getattr(self, name)!r} is not allowed: {allowed}"
            )

        def integer(name: str, low: int) -> None:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise bad(name, f"an integer >= {low}")

        def fraction(name: str, high_open: bool = False) -> None:
            value = getattr(self, name)
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not (0.0 <= value < 1.0 if high_open else 0.0 <= value <= 1.0):
                raise bad(name, f"a number in [0, {'1)' if high_open else '1]'}")

        def choice(name: str, allowed: tuple[str, ...]) -> None:
            if getattr(self, name) not in allowed:
                raise bad(name, f"one of {', '.join(allowed)}")

        def boolean(name: str) -> None:
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "True or False")

        for name in ("tile_px", "learning_rate_decay_steps", "batch_size", "hidden_layer_width"):
            integer(name, 1)
        for name in ("toplayer_epochs", "hidden_layers", "early_stop_patience"):
            integer(name, 0)
        integer("trainable_layers", 0)
        integer("seed", 0)
        um = self.tile_um
        if not (
            (isinstance(um, int) and not isinstance(um, bool) and um > 0)
            or (isinstance(um, str) and um.endswith("x") and um[:-1].replace(".", "", 1).isdigit())
        ):
            raise bad("tile_um", "a positive integer (microns) or a magnification such as '10x'")
        epochs = self.epochs
        if (
            not isinstance(epochs, list)
            or not epochs
            or any(isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in epochs)
            or epochs != sorted(set(epochs))
        ):
            raise bad("epochs", "an integer >= 1 or an increasing list of them")
        if self.toplayer_epochs > epochs[-1]:
            raise bad("toplayer_epochs", f"at most the number of epochs ({epochs[-1]})")
        if not isinstance(self.model, str) or not self.model:
            raise bad("model", "the name of a registered tile model (jaxwsi.models.names())")
        choice("pooling", POOLINGS)
        self._validate_loss(bad)
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
            raise bad("learning_rate", "a number > 0")
        fraction("learning_rate_decay")
        from jaxwsi.train.optim import OPTIMIZERS

        if not isinstance(self.optimizer, str) or self.optimizer.lower() not in OPTIMIZERS:
            raise bad("optimizer", f"one of {', '.join(OPTIMIZERS)} (any case)")
        for name in ("early_stop", "uq", "include_top", "drop_images"):
            boolean(name)
        choice("early_stop_method", EARLY_STOP_METHODS)
        manual = (self.manual_early_stop_epoch, self.manual_early_stop_batch)
        for name, value in zip(
            ("manual_early_stop_epoch", "manual_early_stop_batch"), manual, strict=True
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad(name, "None or an integer")
        if self.early_stop and self.early_stop_method == "manual" and None in manual:
            raise bad(
                "manual_early_stop_epoch",
                "an integer (with manual_early_stop_batch) when early_stop_method='manual'",
            )
        choice("training_balance", BALANCES)
        choice("validation_balance", BALANCES)
        if self.model_type() != "classification" and "category" in (
            self.training_balance,
            self.validation_balance,
        ):
            name = (
                "training_balance" if self.training_balance == "category" else "validation_balance"
            )
            raise bad(
                name, f"'category' only with a classification loss (this is {self.model_type()})"
            )
        for name in ("l1", "l2", "l1_dense", "l2_dense"):
            fraction(name)
        fraction("dropout", high_open=True)
        if self.uq and self.dropout == 0:
            raise bad("uq", "True only with dropout > 0 (Monte-Carlo dropout)")
        if self.augment is not None and (
            not isinstance(self.augment, str) or set(self.augment) - set(AUGMENT_LETTERS)
        ):
            raise bad("augment", f"None or a string of the letters {AUGMENT_LETTERS!r}")
        if self.normalizer is not None:
            from jaxwsi.norm.registry import NORMALIZERS

            if self.normalizer not in NORMALIZERS:
                raise bad("normalizer", f"None or one of {', '.join(sorted(NORMALIZERS))}")
        if self.normalizer_source is not None and not isinstance(self.normalizer_source, str):
            raise bad("normalizer_source", "None or the path of an image file")
        choice("dtype", DTYPES)
        if self.pretrain == "imagenet":
            raise bad(
                "pretrain",
                "nothing can be downloaded here: pass the path of a local .safetensors file "
                "(torchvision/timm layout) or None for random initialization",
            )
        if self.pretrain is not None and not isinstance(self.pretrain, str):
            raise bad("pretrain", "None or the path of a local .safetensors file")

    def _validate_loss(self, bad: Callable[[str, str], ModelParamsError]) -> None:
        loss = self.loss
        if isinstance(loss, Mapping):
            if set(loss) != {"type", "fn"} or loss["type"] not in MODEL_TYPES:
                raise bad("loss", f"a custom loss is {{'type': one of {MODEL_TYPES}, 'fn': ...}}")
            if not (callable(loss["fn"]) or isinstance(loss["fn"], str)):
                raise bad("loss", "a custom loss 'fn' must be callable or 'module:qualname'")
        elif loss not in AllLossDict:
            raise bad("loss", f"one of {', '.join(AllLossDict)} or a custom loss dict")

    def model_type(self) -> str:
        """ "classification", "regression" or "survival", from the loss."""
        if isinstance(self.loss, Mapping):
            return str(self.loss["type"])
        if self.loss in SurvivalLossDict:
            return "survival"
        if self.loss in RegressionLossDict:
            return "regression"
        return "classification"

    def loss_fn(self) -> Callable[..., Any]:
        """The loss function: ``fn(outputs [B, n], labels [B], events [B] | None) -> scalar``."""
        if isinstance(self.loss, Mapping):
            fn = self.loss["fn"]
            if isinstance(fn, str):
                module, _, qualname = fn.partition(":")
                try:
                    target: Any = importlib.import_module(module)
                    for part in qualname.split("."):
                        target = getattr(target, part)
                except (ImportError, AttributeError) as err:
                    raise ModelParamsError(
                        f"custom loss {fn!r} cannot be imported ({err}); import the module that "
                        "defines it or pass the function itself"
                    ) from None
                fn = target
            return fn
        table = {**ClassificationLossDict, **RegressionLossDict, **SurvivalLossDict}
        return table[self.loss]

    def get_normalizer(self) -> Any:
        """The stain normalizer (`jaxwsi.norm.autoselect`), fitted to ``normalizer_source``, or
        None."""
        if self.normalizer is None:
            return None
        from jaxwsi.norm.registry import autoselect

        return autoselect(self.normalizer, self.normalizer_source)

    def compute_dtype(self) -> Any:
        """The JAX compute dtype: ``dtype``, with "auto" = bfloat16 on a GPU, else float32."""
        import jax
        import jax.numpy as jnp

        name = self.dtype
        if name == "auto":
            name = "bfloat16" if jax.default_backend() == "gpu" else "float32"
        return jnp.dtype(name)

    @property
    def epoch_list(self) -> list[int]:
        """The epochs at which to evaluate and save (``epochs`` is stored as this list)."""
        return list(self.epochs)  # type: ignore[arg-type]

    @property
    def last_epoch(self) -> int:
        return self.epoch_list[-1]
