"""Training infrastructure shared by every trainer (tile, segmentation, MIL): the data-parallel
mesh, optimizers, the functional train state and jitted steps, orbax checkpoints, stop-on-signal,
TensorBoard events and progress bars."""

from jaxwsi.train.checkpoint import Checkpointer, CheckpointError
from jaxwsi.train.events import EventLog
from jaxwsi.train.mesh import batch_sharding, data_mesh, replicated, shard_batch
from jaxwsi.train.optim import learning_rate_schedule, make_optimizer
from jaxwsi.train.progress import Progress
from jaxwsi.train.state import TrainState
from jaxwsi.train.step import make_eval_step, make_train_step
from jaxwsi.train.stop import StopRequest

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "EventLog",
    "Progress",
    "StopRequest",
    "TrainState",
    "batch_sharding",
    "data_mesh",
    "learning_rate_schedule",
    "make_eval_step",
    "make_optimizer",
    "make_train_step",
    "replicated",
    "shard_batch",
]
