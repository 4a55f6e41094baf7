"""Pretrained weights from local files only: torchvision / timm ``state_dict``s in ``.safetensors``.

Nothing is downloaded. Architectures whose attribute names mirror torch's keys
(``weights_layout = "torch"``: the torchvision ResNets, EfficientNet-B0 and MobileNetV2, and
the timm ViTs) load by name: each parameter path
``layer1.0.conv1.kernel`` reads the key ``layer1.0.conv1.weight``, with the layout changes

- convolution weights OIHW → HWIO, linear weights (out, in) → (in, out);
- BatchNorm ``weight``/``bias``/``running_mean``/``running_var`` → ``scale``/``bias``/``mean``/
  ``var`` (``num_batches_tracked`` ignored); LayerNorm ``weight`` → ``scale``;
- a module's ``convert_weight`` hook for the rest (a ViT resizes ``pos_embed`` to its grid).

Every tensor is used, except the prefixes an architecture declares unused
(``unused_weight_prefixes``: the ImageNet classifier, layer4 of a truncated ResNet); otherwise
the error lists the missing keys, the extra keys and the shapes that differ, and says what to
pass.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxwsi.errors import JaxwsiError

log = logging.getLogger(__name__)

_RENAMES = {"kernel": "weight", "scale": "weight", "mean": "running_mean", "var": "running_var"}
_IGNORED_SUFFIXES = ("num_batches_tracked",)
_SHOW = 8  # keys listed per kind of problem in an error


class WeightsError(JaxwsiError, ValueError):
    """A weights file that does not fit the model (or cannot be used at all)."""


def resolve_pretrain(pretrain: str | os.PathLike[str] | None) -> Path | None:
    """``pretrain`` as a local file: None stays None; "imagenet" and missing files raise."""
    if pretrain is None:
        return None
    if str(pretrain).lower() == "imagenet":
        raise WeightsError(
            "pretrain='imagenet': jaxwsi cannot download weights. Pass a local torchvision/timm "
            "state dict saved as .safetensors (e.g. "
            "safetensors.torch.save_file(torchvision.models.resnet50(weights='DEFAULT')"
            ".state_dict(), 'resnet50.safetensors') on a machine with internet), as "
            "pretrain='resnet50.safetensors', or pretrain=None for random initialization."
        )
    path = Path(pretrain).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"weights file not found: {path}. Pass the path of an existing .safetensors "
            "state dict (torchvision/timm layout) as pretrain, or pretrain=None for random "
            "initialization."
        )
    if path.suffix != ".safetensors":
        raise WeightsError(
            f"{path}: weights must be a .safetensors file (never a pickle). Convert a torch "
            "checkpoint with safetensors.torch.save_file(torch.load(path), "
            "'weights.safetensors')."
        )
    return path


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All tensors of a ``.safetensors`` file as numpy arrays."""
    from safetensors.numpy import load_file

    try:
        return load_file(str(path))
    except Exception as err:  # the library raises several types for unreadable files
        raise WeightsError(f"{path}: not a readable .safetensors file ({err})") from err


def load_weights(model: nnx.Module, pretrain: str | os.PathLike[str]) -> nnx.Module:
    """Load the local weights file ``pretrain`` into ``model`` (a backbone, an extractor, or a
    `TileModel`, whose backbone receives them) in place; returns ``model``."""
    path = resolve_pretrain(pretrain)
    if path is None:
        return model
    load_state_dict(model, read_safetensors(path), source=str(path))
    return model


def build_with_weights(
    build: Callable[[], nnx.Module], pretrain: str | os.PathLike[str]
) -> nnx.Module:
    """``build()`` with its parameters from the weights file and no random initialization: the
    structure comes from `nnx.eval_shape`. Built for real first only when the file does not cover
    all of the model's state (e.g. a custom backbone holding RNG streams)."""
    model = load_weights(nnx.eval_shape(build), pretrain)
    if any(isinstance(x, jax.ShapeDtypeStruct) for x in jax.tree.leaves(nnx.state(model))):
        model = load_weights(build(), pretrain)
    return model


def load_state_dict(
    model: nnx.Module, state_dict: Mapping[str, Any], *, source: str = "state dict"
) -> None:
    """Copy a torch-layout ``state_dict`` (key → array) into ``model``'s params and BatchNorm
    statistics, in place. Raises `WeightsError` unless every tensor fits (see module docs)."""
    target = _weights_target(model)
    arch = type(target).__name__
    if getattr(target, "weights_layout", None) != "torch":
        raise WeightsError(
            f"{source}: {arch} has no torch-layout weights mapping; local weights files load "
            "into resnet18, resnet50, resnet50_trunc, efficientnet_b0, mobilenet_v2 "
            "(torchvision) and the ViTs (vit_s16, vit_b16, vit_l16; timm). Pass pretrain=None."
        )
    state = nnx.state(target, nnx.Any(nnx.Param, nnx.BatchStat))
    flat = nnx.to_flat_state(state)
    used: set[str] = set()
    missing: list[str] = []
    mismatched: list[str] = []
    values: dict[tuple[Any, ...], Any] = {}
    for path, variable in flat:
        key = _torch_key(path)
        if key not in state_dict:
            missing.append(key)
            continue
        used.add(key)
        shape = tuple(variable.shape)
        value = _to_flax(path[-1], np.asarray(state_dict[key]))
        hook = getattr(target, "convert_weight", None)
        if hook is not None:
            value = hook(key, value, shape)
        if tuple(value.shape) != shape:
            mismatched.append(
                f"{key}: file {tuple(np.shape(state_dict[key]))}, model "
                f"{_torch_shape(path[-1], shape)}"
            )
            continue
        values[path] = jnp.asarray(value, dtype=variable.dtype)
    skipped = _skipped_keys(target, state_dict, used)
    extra = sorted(set(state_dict) - used - set(skipped))
    if missing or extra or mismatched:
        raise WeightsError(_report(source, arch, missing, extra, mismatched))
    if skipped:
        log.info(
            "%s: %d tensors not used by %s: %s",
            source,
            len(skipped),
            arch,
            _listing(sorted(skipped)),
        )
    for path, variable in flat:
        variable.set_value(values[path])
    nnx.update(target, state)


def _weights_target(model: nnx.Module) -> nnx.Module:
    """The module that holds the weights: a `TileModel`'s backbone, else the model itself."""
    backbone = getattr(model, "backbone", None)
    if getattr(model, "weights_layout", None) is None and isinstance(backbone, nnx.Module):
        return backbone
    return model


def _torch_key(path: tuple[Any, ...]) -> str:
    *parents, name = (str(p) for p in path)
    return ".".join([*parents, _RENAMES.get(name, name)])


def _to_flax(name: Any, value: np.ndarray) -> np.ndarray:
    """torch → flax layout: OIHW → HWIO and (out, in) → (in, out) for kernels."""
    if name == "kernel" and value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if name == "kernel" and value.ndim == 2:
        return value.T
    return value


def _torch_shape(name: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    if name == "kernel" and len(shape) == 4:
        return (shape[3], shape[2], shape[0], shape[1])
    if name == "kernel" and len(shape) == 2:
        return (shape[1], shape[0])
    return shape


def _skipped_keys(target: nnx.Module, state_dict: Mapping[str, Any], used: set[str]) -> list[str]:
    prefixes = tuple(getattr(target, "unused_weight_prefixes", ()))
    return [
        k
        for k in state_dict
        if k not in used
        and (k.endswith(_IGNORED_SUFFIXES) or (prefixes and k.startswith(prefixes)))
    ]


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOW])
    return shown + (f", ... ({len(keys) - _SHOW} more)" if len(keys) > _SHOW else "")


def _report(source: str, arch: str, missing: list[str], extra: list[str], bad: list[str]) -> str:
    lines = [f"{source} does not fit {arch}:"]
    if missing:
        lines.append(f"  missing from the file ({len(missing)}): {_listing(missing)}")
    if extra:
        lines.append(f"  extra in the file ({len(extra)}): {_listing(extra)}")
    if bad:
        lines.append(f"  shapes differ ({len(bad)}): {_listing(bad)}")
    lines.append("  " + _hint(arch, missing, extra))
    return "\n".join(lines)


def _hint(arch: str, missing: list[str], extra: list[str]) -> str:
    """What to pass instead, from the pattern of the mismatch."""
    if any(".ls1." in k for k in extra):
        return "The file has layer scale (ls1/ls2, e.g. UNI): build the ViT with layer_scale=1e-5."
    if any(".ls1." in k for k in missing):
        return "The file has no layer scale: build the ViT with layer_scale=None."
    for prefix in ("module.", "model.", "backbone.", "encoder."):
        if extra and all(k.startswith(prefix) for k in extra):
            return (
                f"Every file key starts with {prefix!r}: strip it "
                f"({{k.removeprefix({prefix!r}): v for k, v in state_dict.items()}}) and save "
                "the file again."
            )
    return (
        f"Pass a state dict of the same architecture as {arch} in torchvision/timm key layout "
        "(e.g. a torchvision resnet50 file for resnet50/resnet50_trunc, a timm "
        "vit_base_patch16_224 file for vit_b16), or pretrain=None."
    )
