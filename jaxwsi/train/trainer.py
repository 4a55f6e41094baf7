"""The tile trainer: Slideflow's weakly supervised training (each tile inherits its slide's label)
on Flax NNX, data-parallel over every device of every process.

``trainer = build_trainer(hp, outdir, labels)``; ``trainer.train(train_dataset, val_dataset)``
returns the validation metrics per evaluated epoch (``{"epoch2": {"tile_auc": {...}, ...}}``)
and leaves Slideflow's files in ``outdir`` (`jaxwsi.train.outputs`), TensorBoard events and
orbax checkpoints (``outdir/checkpoints``). The step is the shared one (`make_train_step`):
state replicated, the global batch sharded ``P("data")``, BatchNorm statistics over the global
batch. Every process reads its own loader shards (`jaxwsi.train.streams`). A run stopped by
Ctrl-C / SIGTERM (or killed) continues exactly with ``train(..., resume=True)``: the batches
are restored from the loader state, dropout keys are a function of (seed, step).
`load_trainer` rebuilds a trained model from its folder for `Trainer.evaluate` / `predict`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from flax import nnx

from jaxwsi.dataset import Dataset
from jaxwsi.models import (
    TileModel,
    build_tile_model,
    head_filter,
    kernel_filter,
    param_mask,
    trainable_filter,
)
from jaxwsi.norm.params_json import load_normalizer, save_normalizer
from jaxwsi.train.checkpoint import Checkpointer
from jaxwsi.train.early_stop import EarlyStop
from jaxwsi.train.events import EventLog
from jaxwsi.train.mesh import data_mesh, local_batch_size, replicate, replicated, shard_batch
from jaxwsi.train.metrics import evaluation_metrics
from jaxwsi.train.optim import (
    frozen_except,
    learning_rate_schedule,
    make_optimizer,
    masked_penalty,
)
from jaxwsi.train.outputs import (
    read_params,
    tile_predictions,
    write_manifest,
    write_params,
    write_predictions,
    write_roc_curves,
)
from jaxwsi.train.params import ModelParams
from jaxwsi.train.progress import Progress
from jaxwsi.train.state import TrainState
from jaxwsi.train.step import make_eval_step, make_train_step
from jaxwsi.train.stop import StopRequest
from jaxwsi.train.streams import TrainStream, eval_batches
from jaxwsi.train.targets import Targets, build_targets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainerOptions:
    """`build_trainer`'s keyword options (each default here only).

    ``input_header``: clinical input columns; ``event_header``: the event column of a survival
    model; ``loader_workers``: loader shards per process; ``validate_on_batch`` /
    ``validation_steps``: mid-epoch validation checks (early stopping); ``save_every``: also
    checkpoint every N steps; ``uq_samples``: Monte-Carlo dropout samples when ``hp.uq``;
    ``config``: extra entries for params.json (the experiment's settings)."""

    input_header: str | Sequence[str] | None = None
    event_header: str | None = None
    loader_workers: int = 1
    validation_batch_size: int | None = None
    validate_on_batch: int = 0
    validation_steps: int = 50
    save_every: int | None = None
    log_frequency: int = 20
    uq_samples: int = 30
    save_predictions: bool = True
    progress: bool = True
    config: dict[str, Any] | None = None


def build_trainer(
    hp: ModelParams, outdir: str | os.PathLike[str], labels: str | Sequence[str], **options: Any
) -> Trainer:
    """A `Trainer` of ``hp`` for the outcome column(s) ``labels``, writing into ``outdir``.
    ``options``: `TrainerOptions` fields."""
    if not isinstance(hp, ModelParams):
        raise TypeError(f"hp must be a jaxwsi.ModelParams, got {type(hp).__name__}")
    if not isinstance(labels, str | list | tuple):
        raise TypeError(
            f"labels must be the outcome column name(s) of the annotations, got "
            f"{type(labels).__name__}"
        )
    return Trainer(
        hp,
        Path(outdir),
        list([labels] if isinstance(labels, str) else labels),
        TrainerOptions(**options),
    )


def load_trainer(model_dir: str | os.PathLike[str], **options: Any) -> Trainer:
    """The trained model of a model folder (params.json + the latest checkpoint), ready for
    `Trainer.evaluate` and `Trainer.predict`."""
    model_dir = Path(model_dir)
    params = read_params(model_dir)
    hp = ModelParams.from_dict(params["hp"])
    saved = dict(params.get("training_options", {}))
    saved.update(options)
    trainer = Trainer(hp, model_dir, params["outcomes"], TrainerOptions(**saved))
    trainer.targets = Targets.from_dict(params["targets"])
    trainer.normalizer = load_normalizer(model_dir / "params.json")
    with Checkpointer(model_dir / "checkpoints") as ckpt:
        extra = ckpt.read_extra()
        state = trainer._initial_state(_head_only(hp, extra), pretrained=False)
        trainer.state, _ = ckpt.restore(state)
    return trainer


def _head_only(hp: ModelParams, extra: dict[str, Any]) -> bool:
    """Whether the checkpoint with ``extra`` was saved with the head-only optimizer: during the
    top-layer epochs, and at the very start of the first full epoch (the optimizer switches
    before its first step, after that checkpoint)."""
    at = (extra["epoch"], extra["batch"])
    return hp.toplayer_epochs > 0 and at <= (hp.toplayer_epochs, 0)


class Trainer:
    """Trains, evaluates and predicts one tile model (see the module docstring)."""

    def __init__(
        self, hp: ModelParams, outdir: Path, outcomes: list[str], options: TrainerOptions
    ) -> None:
        self.hp = hp
        self.outdir = outdir
        self.outcomes = outcomes
        self.options = options
        self.mesh = data_mesh()
        self.targets: Targets | None = None
        self.normalizer: Any = None
        self.state: TrainState | None = None
        self._train_step: Any = None
        self._predict_steps: dict[bool, Any] = {}

    # ---- model, optimizer, steps ----

    def _model(self, pretrained: bool = True) -> TileModel:
        """The tile model; ``pretrained=False`` skips ``hp.pretrain`` (a checkpoint will replace
        every weight, so the file need not exist any more)."""
        hp, targets = self.hp, self.targets
        assert targets is not None
        return build_tile_model(
            hp.model,
            num_classes=targets.num_classes,
            num_clinical=targets.num_clinical,
            hidden_layers=hp.hidden_layers,
            hidden_layer_width=hp.hidden_layer_width,
            dropout=hp.dropout,
            pooling=None if hp.pooling == "none" else hp.pooling,
            include_top=hp.include_top,
            drop_images=hp.drop_images,
            pretrain=hp.pretrain if pretrained else None,
            dtype=hp.compute_dtype(),
            rngs=nnx.Rngs(hp.seed),
        )

    def _optimizer(self, model: TileModel, head_only: bool) -> optax.GradientTransformation:
        """Penalties (L1/L2 on backbone kernels, l1_dense/l2_dense on head kernels; never on
        biases or BatchNorm), the optimizer with Slideflow's decay, then freezing."""
        hp = self.hp
        rate = learning_rate_schedule(
            hp.learning_rate,
            decay=hp.learning_rate_decay,
            decay_steps=hp.learning_rate_decay_steps,
        )
        parts = []
        for l1, l2, part in ((hp.l1, hp.l2, "backbone"), (hp.l1_dense, hp.l2_dense, "head")):
            if l1 or l2:
                parts.append(masked_penalty(l1, l2, param_mask(model, kernel_filter(model, part))))
        tx = optax.chain(*parts, make_optimizer(hp.optimizer, rate))
        trainable = (
            head_filter(model) if head_only else trainable_filter(model, hp.trainable_layers)
        )
        if trainable is not nnx.Param:
            tx = frozen_except(tx, param_mask(model, trainable))
        return tx

    def _initial_state(self, head_only: bool, pretrained: bool = True) -> TrainState:
        model = self._model(pretrained)
        return replicate(
            self.mesh, TrainState.create(model, self._optimizer(model, head_only), self.hp.seed)
        )

    def _loss_fn(self) -> Any:
        loss, targets = self.hp.loss_fn(), self.targets
        assert targets is not None
        classification = targets.model_type == "classification"

        def loss_fn(model: Any, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
            outputs = model(batch.get("image"), batch.get("clinical"), rngs=nnx.Rngs(dropout=rng))
            y, event = batch["y"], batch.get("event")
            total = sum(loss(out, y[:, i], event) for i, out in enumerate(outputs))
            metrics = {}
            if classification:
                hits = [jnp.mean(out.argmax(-1) == y[:, i]) for i, out in enumerate(outputs)]
                metrics["accuracy"] = sum(hits) / len(hits)
            return total, metrics

        return loss_fn

    def _predict_step(self, mesh: Any, mc_dropout: bool) -> Any:
        """Eval step: per-outcome softmax (classification) or values, concatenated; with
        ``mc_dropout`` the mean and standard deviation over ``uq_samples`` dropout draws."""
        classification = self.targets is not None and self.targets.model_type == "classification"
        samples = self.options.uq_samples

        def outputs(model: Any, batch: dict, key: jax.Array | None = None) -> jax.Array:
            out = model(
                batch.get("image"),
                batch.get("clinical"),
                rngs=None if key is None else nnx.Rngs(dropout=key),
            )
            out = [jax.nn.softmax(o) if classification else o for o in out]
            return jnp.concatenate(out, axis=-1)

        if not mc_dropout:
            return make_eval_step(lambda model, batch: outputs(model, batch), mesh)

        def sampled(model: Any, batch: dict, key: jax.Array) -> jax.Array:
            model.mc_dropout()
            draws = jnp.stack([outputs(model, batch, k) for k in jax.random.split(key, samples)])
            return jnp.stack([draws.mean(0), draws.std(0)], axis=1)  # [B, 2, n]

        return make_eval_step(sampled, mesh, rng=True)

    # ---- training ----

    def train(
        self, train_dataset: Dataset, val_dataset: Dataset | None = None, *, resume: bool = False
    ) -> dict[str, dict[str, Any]]:
        """Train for ``hp.epochs``, evaluating ``val_dataset`` at each listed epoch; returns
        ``{"epoch{N}": metrics}``. ``resume``: continue from the latest checkpoint in ``outdir``
        (a run stopped by a signal or killed). Empty when stopped by a signal."""
        hp, opts, mesh = self.hp, self.options, self.mesh
        has_val = val_dataset is not None and len(val_dataset) > 0
        self.outdir.mkdir(parents=True, exist_ok=True)
        self.targets = build_targets(
            [train_dataset] + ([val_dataset] if has_val else []),  # type: ignore[list-item]
            self.outcomes,
            hp.model_type(),
            event_header=opts.event_header,
            input_header=opts.input_header,
        )
        self.normalizer = self._fit_normalizer(train_dataset)
        if jax.process_index() == 0:
            self._write_params()
            write_manifest(
                self.outdir, self.targets, train_dataset, val_dataset if has_val else None
            )

        batch_size = local_batch_size(hp.batch_size, mesh)
        steps_per_epoch = max(1, train_dataset.num_tiles // hp.batch_size)
        stream = TrainStream(
            self._balanced(train_dataset, hp.training_balance),
            self.targets,
            batch_size=batch_size,
            seed=hp.seed,
            augment=hp.augment,
            normalizer=self.normalizer,
            loader_workers=opts.loader_workers,
            drop_images=hp.drop_images,
        )
        checks = None
        if has_val and opts.validate_on_batch:
            checks = TrainStream(
                self._balanced(val_dataset, hp.validation_balance),  # type: ignore[arg-type]
                self.targets,
                batch_size=batch_size,
                seed=hp.seed,
                augment=None,
                normalizer=self.normalizer,
                loader_workers=opts.loader_workers,
                drop_images=hp.drop_images,
            )
        early = EarlyStop(method=hp.early_stop_method, patience=hp.early_stop_patience)

        ckpt = Checkpointer(self.outdir / "checkpoints")
        epoch, skip, results, sums = 0, 0, {}, [0.0, 0.0, 0]
        if ckpt.latest_step() is not None:
            if not resume:
                ckpt.close()
                raise FileExistsError(
                    f"{self.outdir} already holds checkpoints: pass resume=True to continue "
                    "that run, or train into a new folder"
                )
            extra = ckpt.read_extra()
            state, _ = ckpt.restore(self._initial_state(_head_only(hp, extra), pretrained=False))
            epoch, skip, results, sums = (
                extra["epoch"],
                extra["batch"],
                extra["results"],
                extra["sums"],
            )
            stream.set_state(extra["data"])
            if checks is not None:
                checks.set_state(extra["checks"])
            early = EarlyStop(**extra["early_stop"])
            log.info("resuming %s at epoch %d, batch %d", self.outdir, epoch + 1, skip)
        else:
            state = self._initial_state(head_only=hp.toplayer_epochs > 0)

        pending: list[dict[str, jax.Array]] = []  # this epoch's step metrics, not yet summed

        def totals() -> list[float]:
            """[loss sum, accuracy sum, steps] of the epoch so far (a device sync)."""
            host = jax.device_get(pending)
            pending.clear()
            sums[0] += float(sum(m["loss"] for m in host))
            sums[1] += float(sum(m.get("accuracy", 0.0) for m in host))
            sums[2] += len(host)
            return sums

        def save(epoch: int, batch: int) -> None:
            extra = {
                "epoch": epoch,
                "batch": batch,
                "data": stream.get_state(),
                "checks": checks.get_state() if checks is not None else None,
                "results": results,
                "sums": totals(),
                "early_stop": early.state(),
            }
            ckpt.save(int(state.step), state, extra=extra)

        train_step = make_train_step(self._loss_fn(), mesh)
        step = int(state.step)
        stopped = False
        with EventLog(self.outdir) as events, StopRequest() as stop:
            while epoch < hp.last_epoch and not stopped:
                if epoch == hp.toplayer_epochs and hp.toplayer_epochs and skip == 0:
                    state = state.with_tx(self._optimizer(self._model(False), head_only=False))
                desc = f"epoch {epoch + 1}/{hp.last_epoch}"
                with Progress(
                    steps_per_epoch * hp.batch_size, desc, disable=not opts.progress
                ) as bar:
                    bar.update(skip * hp.batch_size)
                    for batch_index in range(skip, steps_per_epoch):
                        state, metrics = train_step(state, shard_batch(mesh, next(stream)))
                        step += 1
                        pending.append(metrics)
                        bar.update(hp.batch_size, **metrics)
                        if step % opts.log_frequency == 0:
                            events.scalars(jax.device_get(metrics), step, "train/")
                        done = epoch + (batch_index + 1) / steps_per_epoch
                        if checks is not None and step % opts.validate_on_batch == 0:
                            value = self._check(state, checks)
                            events.scalar(f"val/batch_{hp.early_stop_method}", value, step)
                            if hp.early_stop and hp.early_stop_method != "manual":
                                stopped = early.update(value, done)
                        if hp.early_stop and hp.early_stop_method == "manual":
                            stopped = (epoch + 1, batch_index + 1) == (
                                hp.manual_early_stop_epoch,
                                hp.manual_early_stop_batch,
                            )
                        if stop.requested:
                            save(epoch, batch_index + 1)
                            ckpt.close()
                            log.warning(
                                "stopped by %s; train again with resume=True to continue",
                                stop.signal_name,
                            )
                            return {}
                        last = batch_index + 1 == steps_per_epoch
                        if opts.save_every and step % opts.save_every == 0 and not last:
                            save(epoch, batch_index + 1)
                        if stopped:
                            log.info("early stop at epoch %d, batch %d", epoch + 1, batch_index + 1)
                            break
                loss_sum, accuracy_sum, count = totals()
                train_metrics = {"loss": loss_sum / max(count, 1)}
                if self.targets.model_type == "classification":
                    train_metrics["accuracy"] = accuracy_sum / max(count, 1)
                epoch, skip, sums = epoch + 1, 0, [0.0, 0.0, 0]
                if has_val and (epoch in hp.epoch_list or stopped):
                    self.state = state
                    evaluated = self._evaluate(val_dataset, f"val_epoch{epoch}")  # type: ignore[arg-type]
                    evaluated["train_metrics"] = train_metrics
                    results[f"epoch{epoch}"] = evaluated
                    events.scalars(_scalars(evaluated), step, "val/")
                    self._log_results(epoch, evaluated)
                elif epoch in hp.epoch_list:
                    results[f"epoch{epoch}"] = {"train_metrics": train_metrics}
                save(epoch, 0)
        ckpt.close()
        self.state = state
        return results

    def _check(self, state: TrainState, checks: TrainStream) -> float:
        """Mid-epoch validation on ``validation_steps`` batches: the loss or the accuracy."""
        if getattr(self, "_check_step", None) is None:
            loss_fn = self._loss_fn()

            def check(state: TrainState, batch: dict) -> tuple[jax.Array, dict]:
                model = state.model()
                model.eval()
                return loss_fn(model, batch, state.step_key())

            self._check_step = jax.jit(check, out_shardings=replicated(self.mesh))
        values = []
        for _ in range(self.options.validation_steps):
            loss, metrics = self._check_step(state, shard_batch(self.mesh, next(checks)))
            values.append(metrics["accuracy"] if self.hp.early_stop_method == "accuracy" else loss)
        return float(np.mean(jax.device_get(values)))

    def _log_results(self, epoch: int, metrics: dict[str, Any]) -> None:
        from jaxwsi.experiment.results_log import update_results_log

        if jax.process_index() == 0:
            update_results_log(self.outdir / "results_log.csv", self.outdir.name, {epoch: metrics})

    # ---- evaluation and prediction ----

    def evaluate(self, dataset: Dataset) -> dict[str, Any]:
        """Metrics of the trained model on ``dataset``; writes the ``_eval`` prediction files."""
        return self._evaluate(dataset, "eval")

    def predict(
        self, dataset: Dataset, outdir: str | os.PathLike[str] | None = None
    ) -> dict[str, pd.DataFrame]:
        """Tile, slide and patient predictions of ``dataset`` (no labels needed), also written
        as ``{level}_predictions.parquet`` in ``outdir`` (default: the model folder)."""
        from jaxwsi.train.metrics import group_predictions

        tiles = self._tile_predictions(dataset, with_labels=False)
        tables = {level: group_predictions(tiles, level) for level in ("tile", "slide", "patient")}
        if jax.process_index() == 0:
            folder = Path(outdir) if outdir is not None else self.outdir
            folder.mkdir(parents=True, exist_ok=True)
            write_predictions(folder, tables, "")
        return tables

    def _evaluate(self, dataset: Dataset, label: str) -> dict[str, Any]:
        targets = self.targets
        assert targets is not None
        tiles = self._tile_predictions(dataset, with_labels=True)
        metrics, tables = evaluation_metrics(
            tiles, targets.outcomes, targets.model_type, targets.event_header
        )
        metrics["val_metrics"] = {"loss": self._host_loss(tiles)}
        if "accuracy" in metrics:
            metrics["val_metrics"]["accuracy"] = float(np.mean(list(metrics["accuracy"].values())))
        if jax.process_index() == 0 and self.options.save_predictions:
            write_predictions(self.outdir, tables, label)
            write_roc_curves(self.outdir, tables, targets, label)
        return metrics

    def _host_loss(self, tiles: pd.DataFrame) -> float:
        """The loss over every validation tile (log-probabilities as logits: softmax inverts)."""
        from jaxwsi.train.metrics import pred_columns

        targets, loss = self.targets, self.hp.loss_fn()
        assert targets is not None
        events = None
        if targets.event_header is not None:
            events = jnp.asarray(tiles[f"{targets.event_header}-y_true"].to_numpy(np.float32))
        total = 0.0
        for outcome in targets.outcomes:
            out = tiles[pred_columns(tiles, outcome)].to_numpy(np.float32)
            if targets.model_type == "classification":
                out = np.log(np.clip(out, 1e-12, 1.0))
            y = jnp.asarray(tiles[f"{outcome}-y_true"].to_numpy(np.float32))
            with jax.default_device(jax.local_devices(backend="cpu")[0]):
                total += float(loss(jnp.asarray(out), y, events))
        return total

    def _tile_predictions(self, dataset: Dataset, with_labels: bool) -> pd.DataFrame:
        """Every tile of ``dataset`` through the model, gathered from every process."""
        if self.state is None or self.targets is None:
            raise RuntimeError("the trainer has no trained model: train() or load_trainer() first")
        local = jax.local_devices()
        mesh = self.mesh if jax.process_count() == 1 else data_mesh(local)
        state = self.state
        if jax.process_count() > 1:  # each process predicts its own shard on its own devices
            state = jax.tree.map(lambda x: x.addressable_data(0), state)
        state = jax.device_put(state, replicated(mesh))
        uq = self.hp.uq
        if uq not in self._predict_steps:
            self._predict_steps[uq] = self._predict_step(mesh, uq)
        step = self._predict_steps[uq]
        batch_size = self.options.validation_batch_size or self.hp.batch_size // jax.process_count()
        batch_size = -(-batch_size // len(local)) * len(local)
        outputs, infos = [], []
        key = jax.random.key(self.hp.seed)
        for i, (batch, info) in enumerate(
            eval_batches(
                dataset,
                self.targets,
                batch_size=batch_size,
                normalizer=self.normalizer,
                with_labels=with_labels,
                drop_images=self.hp.drop_images,
            )
        ):
            sharded = shard_batch(mesh, batch)
            out = step(state, sharded, jax.random.fold_in(key, i)) if uq else step(state, sharded)
            outputs.append(np.asarray(jax.device_get(out))[info["valid"]])
            infos.append(info)
        info = {k: np.concatenate([d[k] for d in infos]) for k in infos[0] if k != "valid"}
        out = np.concatenate(outputs)
        if jax.process_count() > 1:
            out, info = _gather(out, info, dataset.slides())
        uncertainty = None
        if uq:
            out, uncertainty = out[:, 0], out[:, 1]
        return tile_predictions(self.targets, info, out, uncertainty, dataset.patients())

    # ---- files ----

    def _fit_normalizer(self, dataset: Dataset) -> Any:
        normalizer = self.hp.get_normalizer()
        if normalizer is not None and not normalizer.is_fitted:
            normalizer.fit_reference()
        return normalizer

    def _balanced(self, dataset: Dataset, strategy: str) -> Dataset:
        """Slideflow's balancing: "auto" is category balancing for classification, patient
        balancing otherwise."""
        if strategy == "auto":
            strategy = "category" if self.hp.model_type() == "classification" else "patient"
        if strategy == "none":
            return dataset
        headers = self.outcomes if strategy == "category" else None
        return dataset.balance(headers, strategy)

    def _write_params(self) -> None:
        targets = self.targets
        assert targets is not None
        options = {k: v for k, v in asdict(self.options).items() if k != "config"}
        content = {
            "backend": "jax",
            "model_name": self.outdir.name,
            "tile_px": self.hp.tile_px,
            "tile_um": self.hp.tile_um,
            "model_type": targets.model_type,
            "outcomes": targets.outcomes,
            "outcome_labels": targets.outcome_labels,
            "input_features": targets.input_features,
            "input_feature_sizes": targets.input_feature_sizes,
            "input_feature_labels": targets.input_feature_labels,
            **(self.options.config or {}),
            "hp": self.hp.to_dict(),
            "targets": targets.to_dict(),
            "training_options": options,
        }
        write_params(self.outdir, content)
        save_normalizer(self.outdir / "params.json", self.normalizer)


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """TensorBoard scalars from epoch metrics: ``tile_auc/tissue/1`` etc."""
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if isinstance(value, dict):
            for sub, v in value.items():
                for i, x in enumerate(v if isinstance(v, list) else [v]):
                    out[f"{name}/{sub}" + (f"/{i}" if isinstance(v, list) else "")] = float(x)
    return out


def _gather(
    out: np.ndarray, info: dict[str, np.ndarray], slides: list[str]
) -> tuple[np.ndarray, dict]:
    """Every process's predictions, concatenated in process order (slides as indices)."""
    from jax.experimental import multihost_utils

    index = {s: i for i, s in enumerate(slides)}
    numeric = {k: v for k, v in info.items() if k != "slide"}
    numeric["slide"] = np.asarray([index[s] for s in info["slide"]], np.int64)
    numeric["outputs"] = out
    count = int(len(out))
    counts = np.asarray(multihost_utils.process_allgather(np.int64(count)))
    most = int(counts.max())
    padded = {
        k: np.pad(v, [(0, most - count)] + [(0, 0)] * (v.ndim - 1)) for k, v in numeric.items()
    }
    gathered = multihost_utils.process_allgather(padded)
    merged = {
        k: np.concatenate([np.asarray(v)[p, : counts[p]] for p in range(len(counts))])
        for k, v in gathered.items()
    }
    outputs = merged.pop("outputs")
    merged["slide"] = np.asarray(slides)[merged["slide"]]
    return outputs, merged
