"""Trials (the models of a sweep, the folds of a plan, SMAC's batches) run in parallel: one trial
per device or device group on this machine, or one SLURM job each, through submitit.

Executors:

- ``"inline"``: one after another in this process, on every visible device;
- ``"local"``: submitit's ``LocalExecutor``, at most one trial per device group at a time, each
  in its own process that sees only its devices (``CUDA_VISIBLE_DEVICES`` on GPUs; on a machine
  without GPUs, ``parallel`` single-process trials of ``devices_per_trial`` CPU devices);
- ``"slurm"``: submitit's ``AutoExecutor`` (a job array; ``slurm`` holds its parameters,
  e.g. ``{"slurm_partition": "gpu", "timeout_min": 600}``), ``devices_per_trial`` GPUs a job;
- ``"debug"``: submitit's ``DebugExecutor`` (in this process, for tests and debugging).

A trial function must be importable and must not import JAX before it runs: the device
environment is set in the child process first. ``imports`` names modules (or ``.py`` files)
each trial process imports before its trial, e.g. the one that registers a custom model.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

EXECUTORS = ("inline", "local", "slurm", "debug")
_DEVICE_COUNT_FLAG = re.compile(r"--xla_force_host_platform_device_count=\d+")


@dataclass(frozen=True)
class Execution:
    """Where trials run (see the module docstring); ``folder`` holds submitit's logs and
    pickles (default: ``submitit/`` in the experiment's output folder)."""

    executor: str = "inline"
    parallel: int | None = None
    devices_per_trial: int = 1
    folder: str | None = None
    slurm: Mapping[str, Any] = field(default_factory=dict)
    imports: Sequence[str] = ()

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if self.devices_per_trial < 1 or (self.parallel is not None and self.parallel < 1):
            raise ValueError("devices_per_trial and parallel must be >= 1")


def gpu_count() -> int:
    """GPUs this process may use, without initializing JAX (which would claim their memory):
    ``CUDA_VISIBLE_DEVICES`` when set, else the NVIDIA driver's device list."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    driver = Path("/proc/driver/nvidia/gpus")
    return len(list(driver.iterdir())) if driver.is_dir() else 0


def device_environments(parallel: int | None, devices_per_trial: int) -> list[dict[str, str]]:
    """One environment per concurrent trial slot: its GPUs, or its CPU device count."""
    gpus = gpu_count()
    if gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [d.strip() for d in visible.split(",")] if visible else [str(i) for i in range(gpus)]
        groups = [ids[i : i + devices_per_trial] for i in range(0, gpus, devices_per_trial)]
        groups = [g for g in groups if len(g) == devices_per_trial][: parallel or None]
        if not groups:
            raise ValueError(f"devices_per_trial={devices_per_trial} but only {gpus} GPU(s)")
        return [{"CUDA_VISIBLE_DEVICES": ",".join(g)} for g in groups]
    flags = _DEVICE_COUNT_FLAG.sub("", os.environ.get("XLA_FLAGS", "")).strip()
    flags = f"{flags} --xla_force_host_platform_device_count={devices_per_trial}".strip()
    return [{"JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}] * (parallel or 1)


def import_all(imports: Sequence[str]) -> None:
    """Import modules by name, or ``.py`` files by path (once per process)."""
    import importlib
    import importlib.util
    import sys

    for name in imports:
        if not name.endswith(".py"):
            importlib.import_module(name)
            continue
        path = Path(name).resolve()
        key = f"jaxwsi_user_{path.stem}"
        if key in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(key, path)
        if spec is None or spec.loader is None or not path.is_file():
            raise FileNotFoundError(f"imports: no Python file {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)


def _with_env(env: Mapping[str, str], imports: Sequence[str], fn: Callable[[T], R], item: T) -> R:
    """Runs in the trial's process: its device environment, then ``imports``, then the trial."""
    os.environ.update(env)
    import_all(imports)
    return fn(item)


def run_trials(fn: Callable[[T], R], items: Sequence[T], execution: Execution) -> list[R]:
    """``[fn(item) for item in items]``, run as ``execution`` says; results in input order.
    A failed trial raises (submitit's error carries the trial's traceback)."""
    if execution.executor == "inline" or not items:
        import_all(execution.imports)
        return [fn(item) for item in items]
    import submitit

    folder = Path(execution.folder or "submitit") / "%j"
    if execution.executor == "debug":
        debug = submitit.DebugExecutor(folder=folder)
        return [debug.submit(_with_env, {}, execution.imports, fn, i).result() for i in items]
    if execution.executor == "slurm":
        auto = submitit.AutoExecutor(folder=folder)
        auto.update_parameters(gpus_per_node=execution.devices_per_trial, **execution.slurm)
        with auto.batch():  # one job array
            jobs = [auto.submit(_with_env, {}, execution.imports, fn, item) for item in items]
        return [job.result() for job in jobs]
    return _run_local(fn, items, execution, folder)


def _run_local(
    fn: Callable[[T], R], items: Sequence[T], execution: Execution, folder: Path
) -> list[R]:
    """A pool over device slots: each free slot takes the next trial."""
    import submitit

    slots = device_environments(execution.parallel, execution.devices_per_trial)
    local = submitit.LocalExecutor(folder=folder)
    local.update_parameters(timeout_min=int(execution.slurm.get("timeout_min", 24 * 60)))
    results: dict[int, R] = {}
    pending = list(enumerate(items))
    running: dict[int, tuple[int, Any]] = {}  # slot → (item index, job)
    try:
        while pending or running:
            for slot, env in enumerate(slots):
                if slot not in running and pending:
                    index, item = pending.pop(0)
                    running[slot] = (
                        index,
                        local.submit(_with_env, env, execution.imports, fn, item),
                    )
            finished = [slot for slot, (_, job) in running.items() if job.done()]
            for slot in finished:
                index, job = running.pop(slot)
                results[index] = job.result()
            if not finished:
                time.sleep(0.2)
    finally:
        for _, job in running.values():
            job.cancel(check=False)
    return [results[i] for i in range(len(items))]
