"""The shared training core: mesh, data-parallel step, optimizers, checkpoints, stop requests."""

from __future__ import annotations

import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxwsi.models import get, names, register
from jaxwsi.train import (
    Checkpointer,
    CheckpointError,
    EventLog,
    StopRequest,
    TrainState,
    data_mesh,
    make_eval_step,
    make_optimizer,
    make_train_step,
    shard_batch,
)
from jaxwsi.train.checkpoint import host_numpy
from jaxwsi.train.events import read_scalars
from jaxwsi.train.optim import OPTIMIZERS, frozen_except, learning_rate_schedule, masked_penalty


class TinyNet(nnx.Module):
    def __init__(self, rngs: nnx.Rngs) -> None:
        self.dense = nnx.Linear(4, 8, rngs=rngs)
        self.norm = nnx.BatchNorm(8, rngs=rngs)
        self.drop = nnx.Dropout(0.5, rngs=rngs)
        self.head = nnx.Linear(8, 2, rngs=rngs)

    def __call__(self, x: jax.Array, rngs: nnx.Rngs | None = None) -> jax.Array:
        return self.head(self.drop(nnx.relu(self.norm(self.dense(x))), rngs=rngs))


def loss_fn(model: TinyNet, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
    logits = model(batch["x"], rngs=nnx.Rngs(dropout=rng))
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
    return loss, {"accuracy": (logits.argmax(-1) == batch["y"]).mean()}


def make_batches(n: int, size: int = 32, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = rng.integers(0, 2, size).astype(np.int32)
        x = rng.normal(size=(size, 4)).astype(np.float32) + y[:, None]
        out.append({"x": x, "y": y})
    return out


def fresh_state(seed: int = 0) -> TrainState:
    return TrainState.create(TinyNet(nnx.Rngs(seed)), optax.adam(1e-2), seed=seed)


def run(mesh, steps: int, state: TrainState | None = None, start: int = 0) -> TrainState:
    step = make_train_step(loss_fn, mesh)
    state = fresh_state() if state is None else state
    for batch in make_batches(steps + start)[start:]:
        state, _ = step(state, shard_batch(mesh, batch))
    return state


def leaves(state: TrainState) -> list[np.ndarray]:
    return jax.tree.leaves(host_numpy((state.params, state.rest, state.opt_state, state.step)))


def test_mesh_spans_every_device():
    mesh = data_mesh()
    assert mesh.axis_names == ("data",)
    assert mesh.devices.size == jax.device_count()


def test_losses_agree_on_one_and_all_devices():
    batches = make_batches(5)
    losses = {}
    for devices in (jax.devices()[:1], jax.devices()):
        mesh = data_mesh(devices)
        step = make_train_step(loss_fn, mesh)
        state = fresh_state()
        losses[len(devices)] = []
        for batch in batches:
            state, metrics = step(state, shard_batch(mesh, batch))
            losses[len(devices)].append(float(metrics["loss"]))
    assert len(losses) == 2 or jax.device_count() == 1
    np.testing.assert_allclose(losses[1], losses[jax.device_count()], rtol=1e-5)


def test_training_learns_and_updates_batch_statistics():
    mesh = data_mesh()
    state = run(mesh, 40)
    assert int(state.step) == 40
    mean = np.asarray(state.rest["norm"]["mean"][...])
    assert np.abs(mean).sum() > 0  # BatchNorm running statistics moved
    evaluate = make_eval_step(lambda model, batch: model(batch["x"]), mesh)
    batch = make_batches(1, 64, seed=9)[0]
    logits = np.asarray(evaluate(state, shard_batch(mesh, batch)))
    assert (logits.argmax(-1) == batch["y"]).mean() > 0.8
    again = np.asarray(evaluate(state, shard_batch(mesh, batch)))
    np.testing.assert_array_equal(logits, again)  # eval mode: no dropout


def test_checkpoint_resume_is_bitwise_identical(tmp_path):
    mesh = data_mesh()
    straight = run(mesh, 6)
    first = run(mesh, 3)
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(3, first, extra={"epoch": 1, "loader": {"step": 3}})
    with Checkpointer(tmp_path / "ckpt") as ckpt:
        assert ckpt.latest_step() == 3
        restored, extra = ckpt.restore(fresh_state(seed=1))
    assert extra == {"epoch": 1, "loader": {"step": 3}}
    resumed = run(mesh, 3, state=restored, start=3)
    for a, b in zip(leaves(straight), leaves(resumed), strict=True):
        np.testing.assert_array_equal(a, b)


def test_keep_n_best_by_metric(tmp_path):
    state = fresh_state()
    losses = [0.9, 0.3, 0.5, 0.2, 0.8]
    with Checkpointer(tmp_path, keep_n_best=2, best_metric="val_loss", async_save=False) as ckpt:
        for step, loss in enumerate(losses):
            ckpt.save(step, state, metrics={"val_loss": loss})
        assert ckpt.steps() == [1, 3, 4]  # two best plus the latest
        assert ckpt.best_step() == 3


def test_restore_into_another_model_names_the_difference(tmp_path):
    with Checkpointer(tmp_path, async_save=False) as ckpt:
        ckpt.save(0, fresh_state())
        other = TrainState.create(nnx.Linear(4, 2, rngs=nnx.Rngs(0)), optax.sgd(0.1), seed=0)
        with pytest.raises(CheckpointError, match="different model"):
            ckpt.restore(other)
        with pytest.raises(CheckpointError, match="no checkpoint for step 7"):
            ckpt.restore(fresh_state(), step=7)
    with (
        Checkpointer(tmp_path / "empty") as ckpt,
        pytest.raises(CheckpointError, match="no checkpoint"),
    ):
        ckpt.restore(fresh_state())


def test_optimizers_by_name_and_errors():
    params = {"w": jnp.ones(3)}
    for name in OPTIMIZERS:
        tx = make_optimizer(name, 0.1)
        updates, _ = tx.update({"w": jnp.ones(3)}, tx.init(params), params)
        assert np.all(np.asarray(updates["w"]) < 0), name
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgsx'.*adam"):
        make_optimizer("lbfgsx", 0.1)


def test_learning_rate_decay_is_staircase():
    schedule = learning_rate_schedule(1.0, decay=0.5, decay_steps=10)
    assert [float(schedule(s)) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    assert learning_rate_schedule(0.1) == 0.1
    with pytest.raises(ValueError, match="learning_rate_decay"):
        learning_rate_schedule(0.1, decay=2.0)


def test_penalty_mask_and_freezing():
    params = {"kernel": jnp.array([2.0, -1.0]), "bias": jnp.array([3.0])}
    zeros = jax.tree.map(jnp.zeros_like, params)
    tx = masked_penalty(0.1, 0.5, {"kernel": True, "bias": False})
    updates, _ = tx.update(zeros, tx.init(params), params)
    np.testing.assert_allclose(updates["kernel"], [0.1 + 2.0, -0.1 - 1.0])
    np.testing.assert_allclose(updates["bias"], [0.0])
    frozen = frozen_except(optax.sgd(1.0), {"kernel": False, "bias": True})
    updates, _ = frozen.update(jax.tree.map(jnp.ones_like, params), frozen.init(params), params)
    np.testing.assert_allclose(updates["kernel"], [0.0, 0.0])
    np.testing.assert_allclose(updates["bias"], [-1.0])


def test_registry():
    @register("tiny_test_net")
    def tiny(*, rngs: nnx.Rngs) -> TinyNet:
        return TinyNet(rngs)

    assert get("tiny_test_net") is tiny
    assert "tiny_test_net" in names("tile")
    with pytest.raises(KeyError, match="no mil model named 'tiny_test_net'"):
        get("tiny_test_net", kind="mil")
    with pytest.raises(ValueError, match="unknown model kind"):
        register("x", kind="nope")  # type: ignore[arg-type]


def test_stop_request_on_sigterm():
    with StopRequest() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_event_log_writes_tensorboard_events(tmp_path):
    with EventLog(tmp_path) as log:
        log.scalar("train/loss", 0.5, 1)
        log.scalars({"loss": 0.25, "auc": 0.75}, 2, prefix="val/")
        log.image("val/sample", np.zeros((4, 4, 3), np.uint8), 2)
    assert read_scalars(tmp_path) == {
        "train/loss": [(1, 0.5)],
        "val/loss": [(2, 0.25)],
        "val/auc": [(2, 0.75)],
    }
