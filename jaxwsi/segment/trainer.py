"""The segmentation training loop, on the shared training core (`jaxwsi.train`).

Top to bottom: read and split the data, build the model and resolve its patch sizes (measured
on the device for ``auto``), start fresh / from pretrained weights / from a checkpoint, then
for each epoch take the epoch's patches from the current buffer (redrawn every
``epoch_shuffle`` epochs) in batches through the jitted data-parallel step. Every
``save_every_n_epoch`` epochs: validation loss and metrics, a checkpoint (the latest and the
``keep_n_best`` best by validation loss are kept; by training loss without validation),
TensorBoard scalars and a preview PNG. A device out-of-memory error halves the batch and the
epoch goes on from the same patch; Ctrl-C / SIGTERM saves a resumable checkpoint and returns.
At the end the best or last weights are exported to ``checkpoint_dir/model`` for prediction.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax

from jaxwsi.segment import losses
from jaxwsi.segment.config import ConfigError, SegmentConfig
from jaxwsi.segment.data import LoadedSample, find_samples, load_samples
from jaxwsi.segment.memory import halved_batch, is_oom, largest_fitting
from jaxwsi.segment.output import preview, write_png
from jaxwsi.segment.patches import Batch, PatchSampler, epoch_order
from jaxwsi.segment.saved import build_model, export_model, load_weights, saved_config
from jaxwsi.segment.sizes import auto_candidates, nearest_valid, size_out_for, traced_size_out
from jaxwsi.train.checkpoint import Checkpointer
from jaxwsi.train.events import EventLog
from jaxwsi.train.mesh import data_mesh, shard_batch
from jaxwsi.train.optim import make_optimizer
from jaxwsi.train.progress import Progress
from jaxwsi.train.state import TrainState
from jaxwsi.train.step import make_eval_step, make_train_step
from jaxwsi.train.stop import StopRequest

MONITOR = "loss"  # the checkpoint metric: validation loss, or training loss without validation


@dataclass
class TrainResult:
    """What a `train` call did."""

    run_dir: Path
    epochs_done: int
    step: int
    batch_size: int
    size_in: list[int]
    size_out: list[int]
    stopped: bool
    exported_step: int | None
    history: list[dict[str, float]] = field(default_factory=list)


# ----------------------------------------------------------------------------- the step


def scores(config: SegmentConfig, outputs: list, label: Any, weight: Any) -> tuple:
    """(the configured loss summed over the heads, the main head's configured metrics)."""
    weights = config.loss.loss_weight or [1.0] * len(outputs)
    loss = losses.heads_loss(config.loss.name, outputs, label, weight, weights)
    metrics = losses.metrics(outputs[0], label, weight)
    return loss, {k: metrics[k] for k in config.metrics}


def loss_fn(config: SegmentConfig, model: Any, batch: Batch, rng: jax.Array) -> tuple[Any, dict]:
    """The training loss of one batch (the model in training mode: batch statistics)."""
    return scores(config, model(batch["image"]), batch["label"], batch["weight"])


def _outputs(model: Any, batch: Batch) -> list[jax.Array]:
    return model(batch["image"])


def _validation_scores(config: SegmentConfig, outputs: list, label: Any, weight: Any) -> dict:
    loss, metrics = scores(config, outputs, label, weight)
    return {"loss": loss, **metrics}


def make_tx(config: SegmentConfig) -> optax.GradientTransformation:
    """The optimizer, with coupled L2 ``weight_decay`` (PyTorch Adam's, as the Allen code)."""
    tx = make_optimizer(config.optimizer, config.learning_rate)
    if config.weight_decay:
        tx = optax.chain(optax.add_decayed_weights(config.weight_decay), tx)
    return tx


# ----------------------------------------------------------------------------- set-up


def split_validation(config: SegmentConfig, names: list[str]) -> tuple[list[int], list[int]]:
    """(training, validation) image indices: ``validation.leaveout`` or a seeded
    ``validation_split`` fraction of the images."""
    n = len(names)
    leaveout = list(config.validation.leaveout)
    bad = [i for i in leaveout if not 0 <= i < n]
    if bad:
        raise ConfigError(f"validation.leaveout: {bad} out of range for {n} images")
    if not leaveout and config.validation_split > 0:
        count = round(config.validation_split * n)
        if count == 0 or count == n:
            raise ConfigError(
                f"validation_split: {config.validation_split} of {n} image(s) leaves "
                f"{'no validation' if count == 0 else 'no training'} image; use more images or "
                "validation.leaveout"
            )
        rng = np.random.default_rng(np.random.SeedSequence([config.seed, 3]))
        leaveout = sorted(rng.permutation(n)[:count].tolist())
    train = [i for i in range(n) if i not in leaveout]
    if not train:
        raise ConfigError("validation.leaveout: leaves no training image")
    return train, leaveout


def resolve_sizes(config: SegmentConfig, model: Any) -> tuple[list[int], list[int]]:
    """(size_in, size_out) of an explicit ``size_in``: size_out from the architecture, checked
    against the configured one (the error lists valid sizes near it)."""
    assert isinstance(config.size_in, list)
    name, options = config.model.name, config.model.options
    size_out = size_out_for(name, config.size_in, **options)
    if size_out is None:
        try:
            shapes = traced_size_out(model, config.size_in, config.nchannel)
        except Exception as e:  # the architecture cannot take this size
            near = nearest_valid(name, config.size_in, **options)
            hint = f"; valid sizes near it: {[list(s) for s in near]}" if near else ""
            raise ConfigError(
                f"size_in: {config.size_in} does not fit {name} ({e}){hint}"
            ) from None
        if len(set(shapes)) != 1:
            raise ConfigError(f"size_in: the heads of {name} give different sizes {shapes}")
        size_out = shapes[0]
    if isinstance(config.size_out, list) and list(size_out) != config.size_out:
        raise ConfigError(
            f"size_out: {name} turns size_in {config.size_in} into {list(size_out)}, not "
            f"{config.size_out} (jaxwsi.segment.sizes.valid_sizes lists valid pairs)"
        )
    return list(config.size_in), list(size_out)


def _fake_batch(config: SegmentConfig, size_in: list[int], size_out: list[int], n: int) -> Batch:
    return {
        "image": np.zeros((n, *size_in, config.nchannel), np.float32),
        "label": np.zeros((n, *size_out), np.int32),
        "weight": np.ones((n, *size_out), np.float32),
    }


def with_pretrained_settings(config: SegmentConfig) -> SegmentConfig:
    """``pretrained_settings: keep`` takes optimizer, learning rate, weight decay, loss and
    metrics from the pretrained model's configuration (EPySeg without "recompile")."""
    if config.pretrained is None or config.pretrained_settings != "keep":
        return config
    saved = saved_config(config.pretrained)
    keep = ("optimizer", "learning_rate", "weight_decay", "loss", "metrics")
    return config.replace(**{k: getattr(saved, k) for k in keep})


# ----------------------------------------------------------------------------- the loop


def train(config: SegmentConfig) -> TrainResult:
    """Train a segmentation model as ``config`` says (see the module docstring)."""
    config = with_pretrained_settings(config)
    run_dir = Path(config.checkpoint_dir)
    mesh = data_mesh()
    devices = mesh.devices.size

    # Data: every image read, checked and normalized once.
    samples = find_samples(config.loader.datafolder)
    dims = config.spatial_dims
    assert dims is not None
    data = load_samples(
        samples,
        spatial_dims=dims,
        nchannel=config.nchannel,
        nclass=config.nclass[0],
        ignore_index=config.loss.ignore_index,
        normalization=config.normalization,
    )
    train_ids, val_ids = split_validation(config, [s.name for s in samples])
    train_data: list[LoadedSample] = [data[i] for i in train_ids]
    val_data: list[LoadedSample] = [data[i] for i in val_ids]

    # Model, optimizer, compiled steps.
    tx = make_tx(config)
    state = TrainState.create(build_model(config), tx, seed=config.seed)
    if config.pretrained is not None:
        state, _ = load_weights(config.pretrained, state)
        state = state.with_tx(tx)
    if isinstance(config.size_in, list):
        resolve_sizes(config, state.model())  # fail fast, before anything is written
    train_step = make_train_step(functools.partial(loss_fn, config), mesh, donate=False)
    eval_step = make_eval_step(_outputs, mesh)
    evaluate = jax.jit(functools.partial(_validation_scores, config))

    checkpoints = Checkpointer(
        run_dir / "checkpoints", keep_n_best=config.keep_n_best, best_metric=MONITOR
    )
    resume_from = None
    if config.resume is not None:
        source = Path(config.resume)
        resume_from = (
            checkpoints
            if source.absolute() == run_dir.absolute()
            else Checkpointer(source / "checkpoints", async_save=False)
        )
        extra = resume_from.read_extra()
        config = config.replace(size_in=extra["size_in"], size_out=extra["size_out"])
        config = config.replace(loader=_with_batch(config, extra["batch_size"]))

    # Patch and batch sizes (measured on the device for "auto").
    smallest = [min(d.label.shape[a] for d in train_data) for a in range(dims)]
    if config.size_in == "auto":
        bs = devices if config.loader.batch_size == "auto" else config.loader.batch_size
        candidates = auto_candidates(config.model.name, smallest, **config.model.options)

        def fits_size(pair: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
            batch = _fake_batch(config, list(pair[0]), list(pair[1]), bs)
            jax.block_until_ready(train_step(state, shard_batch(mesh, batch)))

        pair = largest_fitting(candidates, fits_size, "size_in: auto")
        config = config.replace(size_in=list(pair[0]), size_out=list(pair[1]))
    size_in, size_out = resolve_sizes(config, state.model())
    config = config.replace(size_out=size_out)
    if config.loader.batch_size == "auto":
        limit = max(devices, config.loader.PatchPerBuffer // devices * devices)
        sizes = [devices * 2**k for k in range(16) if devices * 2**k <= limit]

        def fits_batch(n: int) -> None:
            batch = shard_batch(mesh, _fake_batch(config, size_in, size_out, n))
            jax.block_until_ready(train_step(state, batch))

        config = config.replace(
            loader=_with_batch(config, largest_fitting(sizes, fits_batch, "batch_size: auto"))
        )
    batch_size = int(config.loader.batch_size)  # type: ignore[arg-type]
    if batch_size % devices:
        raise ConfigError(
            f"loader.batch_size: {batch_size} does not split over {devices} devices: use a "
            f"multiple of {devices}"
        )

    loader = config.loader
    sampler = PatchSampler(
        train_data,
        size_in,
        size_out,
        patches=loader.PatchPerBuffer,
        seed=config.seed,
        augment=config.augmentations,
        workers=loader.NumWorkers,
    )
    validation = (
        PatchSampler(
            val_data, size_in, size_out, patches=config.validation.patches, seed=config.seed + 1
        ).buffer(0)
        if val_data
        else None
    )
    epoch_patches = (
        loader.PatchPerBuffer // batch_size * batch_size
        if config.steps_per_epoch == -1
        else config.steps_per_epoch * batch_size
    )
    if epoch_patches == 0:
        raise ConfigError(
            f"loader.PatchPerBuffer: {loader.PatchPerBuffer} patches make no batch of "
            f"{batch_size}: use more patches or a smaller batch"
        )

    # Where to start: epoch, patch offset in it, running sums of the epoch's training metrics.
    position: dict[str, Any] = {"epoch": 0, "offset": 0, "sums": {}, "batches": 0}
    history: list[dict[str, float]] = []
    if resume_from is not None:
        state, extra = resume_from.restore(state)
        position, history = extra["position"], extra["history"]
        epoch_patches = extra["epoch_patches"]
    checked_sizes: set[int] = set()

    def save(metrics: dict[str, float] | None) -> None:
        extra = {
            "position": position,
            "history": history,
            "batch_size": batch_size,
            "epoch_patches": epoch_patches,
            "size_in": size_in,
            "size_out": size_out,
            "config": config.to_dict(),
        }
        checkpoints.save(int(state.step), state, extra=extra, metrics=metrics)

    stopped = False
    with StopRequest() as stop, EventLog(run_dir / "logs") as events:
        buffer_id, buffer = -1, None
        while position["epoch"] < config.epochs and not stopped:
            epoch = position["epoch"]
            if epoch // loader.epoch_shuffle != buffer_id:
                buffer_id = epoch // loader.epoch_shuffle
                buffer = sampler.buffer(buffer_id)
            assert buffer is not None
            order = epoch_order(config.seed, epoch, loader.PatchPerBuffer, epoch_patches)
            desc = f"epoch {epoch + 1}/{config.epochs}"
            with Progress(epoch_patches, desc, unit="patch") as bar:
                bar.update(position["offset"])
                while position["offset"] + batch_size <= epoch_patches:
                    take = order[position["offset"] : position["offset"] + batch_size]
                    batch = shard_batch(mesh, {k: v[take] for k, v in buffer.items()})
                    try:
                        new_state, metrics = train_step(state, batch)
                        if batch_size not in checked_sizes:  # first run of a new shape: OOM here
                            jax.block_until_ready(metrics)
                            checked_sizes.add(batch_size)
                    except jax.errors.JaxRuntimeError as e:
                        if not is_oom(e):
                            raise
                        old, batch_size = batch_size, halved_batch(batch_size, devices)
                        bar.write(f"out of device memory: batch size {old} → {batch_size}")
                        continue
                    state = new_state
                    position["offset"] += batch_size
                    position["batches"] += 1
                    for k, v in metrics.items():
                        position["sums"][k] = position["sums"].get(k, 0.0) + float(v)
                    bar.update(batch_size, **metrics)
                    if stop.requested:
                        stopped = True
                        break
            if stopped:
                save(None)
                break

            # End of an epoch: training means, then (every save_every_n_epoch) validation,
            # checkpoint, events and a preview.
            means = {f"train_{k}": v / position["batches"] for k, v in position["sums"].items()}
            position = {"epoch": epoch + 1, "offset": 0, "sums": {}, "batches": 0}
            last = epoch + 1 == config.epochs
            if (epoch + 1) % config.save_every_n_epoch and not last:
                history.append({"epoch": epoch + 1, **means})
                continue
            record = {"epoch": epoch + 1, "step": int(state.step), **means}
            n = config.validation.preview
            shown = validation if validation is not None else {k: v[:n] for k, v in buffer.items()}
            outputs = _predict_all(eval_step, state, mesh, shown["image"], batch_size)
            if validation is not None:
                val_scores = evaluate(outputs, validation["label"], validation["weight"])
                record.update({f"val_{k}": float(v) for k, v in val_scores.items()})
            record[MONITOR] = record["val_loss" if validation is not None else "train_loss"]
            history.append(record)
            save({MONITOR: record[MONITOR]})
            scalars = {k: v for k, v in record.items() if k not in ("epoch", "step")}
            events.scalars(scalars, int(state.step))
            events.scalar("batch_size", batch_size, int(state.step))
            if n:
                picture = preview(
                    shown["image"][:n],
                    shown["label"][:n],
                    np.asarray(losses.foreground(jax.numpy.asarray(outputs[0][:n]))),
                )
                write_png(run_dir / "previews" / f"epoch_{epoch + 1:04d}.png", picture)
                events.image("preview", np.repeat(picture[..., None], 3, -1), int(state.step))

    # Export the weights prediction will use.
    checkpoints.wait()
    exported = None
    if not stopped:
        chosen = checkpoints.best_step() if config.load_at_end == "best" else None
        chosen = chosen if chosen is not None else checkpoints.latest_step()
        if chosen is not None:
            final, _ = (
                checkpoints.restore(state, chosen) if chosen != int(state.step) else (state, None)
            )
            export_model(run_dir, config, final, chosen)
            exported = chosen
    checkpoints.close()
    if resume_from is not None and resume_from is not checkpoints:
        resume_from.close()
    return TrainResult(
        run_dir=run_dir,
        epochs_done=position["epoch"],
        step=int(state.step),
        batch_size=batch_size,
        size_in=size_in,
        size_out=size_out,
        stopped=stopped,
        exported_step=exported,
        history=history,
    )


def _with_batch(config: SegmentConfig, batch_size: int) -> Any:
    import dataclasses

    return dataclasses.replace(config.loader, batch_size=int(batch_size))


def _predict_all(
    eval_step: Any, state: TrainState, mesh: Any, images: np.ndarray, batch_size: int
) -> list[np.ndarray]:
    """Every head's logits for ``images``, ``batch_size`` at a time (the last batch padded)."""
    devices = mesh.devices.size
    parts: list[list[np.ndarray]] = []
    for first in range(0, len(images), batch_size):
        chunk = images[first : first + batch_size]
        n = len(chunk)
        padded = -(-n // devices) * devices
        if padded != n:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], padded - n, axis=0)])
        out = eval_step(state, shard_batch(mesh, {"image": chunk}))
        parts.append([np.asarray(o)[:n] for o in out])
    return [np.concatenate(heads) for heads in zip(*parts, strict=True)]
