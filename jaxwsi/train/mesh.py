"""The data-parallel mesh: every device of every process on one ``"data"`` axis.

Batches are sharded ``P("data")`` (each device holds a slice of the global batch), the training
state is replicated ``P()``; under `jax.jit` XLA inserts the gradient all-reduce, and BatchNorm
statistics are reduced over the global batch. Each process feeds only its own devices: its
loader reads its own shard and `shard_batch` assembles the global array from process-local data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def initialize_distributed(**options: Any) -> None:
    """`jax.distributed.initialize()` when this is one process of a multi-process job.

    Does nothing for a single process. A job is multi-process when ``options`` are given
    (coordinator_address, num_processes, process_id) or a cluster launcher is detected by JAX
    (SLURM with several tasks, Open MPI, Kubernetes, ...); call before any other JAX call.
    """
    slurm_tasks = int(os.environ.get("SLURM_NTASKS", "1"))
    ompi_size = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    if options or slurm_tasks > 1 or ompi_size > 1:
        jax.distributed.initialize(**options)


def data_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over ``devices`` (default: every device of every process).

    The axis type is ``Auto`` so sharded matmuls need no ``out_sharding`` annotations (the
    default of `jax.make_mesh` in this JAX is ``Explicit``).
    """
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("data_mesh needs at least one device")
    return Mesh(np.array(devices), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over the ``"data"`` axis."""
    return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    """The same value on every device (training state, metrics)."""
    return NamedSharding(mesh, PartitionSpec())


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
    """This process's share of ``global_batch_size`` (an error when it won't split evenly)."""
    devices = mesh.devices.size
    if global_batch_size % devices:
        raise ValueError(
            f"batch size {global_batch_size} does not split over {devices} devices: "
            f"use a multiple of {devices}"
        )
    return global_batch_size // jax.process_count()


def shard_batch(mesh: Mesh, batch: Any) -> Any:
    """A pytree of process-local numpy arrays → global `jax.Array`s sharded ``P("data")``.

    Each process passes its own rows (its ``local_batch_size``); the global batch is their
    concatenation in process order.
    """
    sharding = batch_sharding(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), batch
    )


def replicate(mesh: Mesh, tree: Any) -> Any:
    """Put ``tree`` on every device of ``mesh`` (identical on every process). With several
    processes each one supplies the (same) value for its own devices."""
    sharding = replicated(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x: Any) -> Any:
        if jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key):
            data = put(jax.random.key_data(x))
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))

    return jax.tree.map(put, tree)
