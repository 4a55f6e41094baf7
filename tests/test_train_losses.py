"""Losses by Slideflow's names: Cox partial likelihood against lifelines, 1 vs 8 devices."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from jaxwsi.train.losses import (
    AllLossDict,
    ClassificationLossDict,
    LinearLossDict,
    RegressionLossDict,
    SurvivalLossDict,
    cox_partial_likelihood,
)
from jaxwsi.train.mesh import data_mesh


def survival_data(n: int, seed: int, ties: bool = False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    times = rng.exponential(np.exp(-0.8 * x))
    if ties:
        times = np.ceil(times * 4) / 4
    events = (rng.random(n) < 0.7).astype(np.float32)
    return x, times, events


def test_both_spellings_and_tables():
    assert (
        ClassificationLossDict["CrossEntropy"]
        is ClassificationLossDict["sparse_categorical_crossentropy"]
    )
    assert RegressionLossDict["MSE"] is RegressionLossDict["mean_squared_error"]
    assert LinearLossDict is RegressionLossDict
    assert SurvivalLossDict["negative_log_likelihood"] is cox_partial_likelihood
    assert set(AllLossDict) == set(ClassificationLossDict) | set(RegressionLossDict) | set(
        SurvivalLossDict
    )


def test_cox_loss_is_lifelines_partial_likelihood():
    """At lifelines' fitted coefficient our loss × #events is minus its log partial likelihood
    and its gradient vanishes (lifelines' MLE is our minimum). No ties: Efron = Breslow."""
    from lifelines import CoxPHFitter

    x, times, events = survival_data(200, seed=1)
    frame = pd.DataFrame({"x": x, "T": times, "E": events})
    fitter = CoxPHFitter().fit(frame, "T", "E")
    beta = float(fitter.params_["x"])

    def loss(b):
        return cox_partial_likelihood(
            (b * jnp.asarray(x))[:, None], jnp.asarray(times), jnp.asarray(events)
        )

    value, grad = jax.value_and_grad(loss)(jnp.float32(beta))
    np.testing.assert_allclose(-float(value) * events.sum(), fitter.log_likelihood_, rtol=1e-5)
    assert abs(float(grad)) < 1e-3


def test_cox_breslow_ties_include_tied_subjects_in_risk_sets():
    x, times, events = survival_data(64, seed=2, ties=True)
    assert len(np.unique(times)) < len(times)
    risk = 0.5 * x
    value = float(
        cox_partial_likelihood(jnp.asarray(risk)[:, None], jnp.asarray(times), jnp.asarray(events))
    )
    # Breslow: each event's risk set is everyone with t_j >= t_i (tied subjects included).
    expected = 0.0
    for i in np.flatnonzero(events):
        expected += risk[i] - np.log(np.exp(risk[times >= times[i]]).sum())
    np.testing.assert_allclose(value, -expected / events.sum(), rtol=1e-5)
    # The batch order does not matter.
    order = np.random.default_rng(0).permutation(len(x))
    shuffled = cox_partial_likelihood(
        jnp.asarray(risk[order])[:, None], jnp.asarray(times[order]), jnp.asarray(events[order])
    )
    np.testing.assert_allclose(float(shuffled), value, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(AllLossDict))
def test_losses_agree_on_1_and_8_devices(name):
    assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
    rng = np.random.default_rng(3)
    n = 64
    if name in ClassificationLossDict:
        outputs, labels = rng.normal(size=(n, 3)), rng.integers(0, 3, n)
    else:
        outputs, labels = rng.normal(size=(n, 1)), rng.uniform(0.5, 2.0, n)
    events = (rng.random(n) < 0.6).astype(np.float32)
    fn = AllLossDict[name]
    arrays = (np.float32(outputs), np.float32(labels), events)
    single = float(jax.jit(fn)(*arrays))
    mesh = data_mesh()
    sharding = NamedSharding(mesh, PartitionSpec("data"))
    sharded = [jax.device_put(a, sharding) for a in arrays]
    multi = float(jax.jit(fn)(*sharded))
    assert np.isfinite(single)
    np.testing.assert_allclose(multi, single, rtol=1e-5)
