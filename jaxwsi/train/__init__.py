"""Training infrastructure shared by every trainer (tile, segmentation, MIL): the data-parallel
mesh, optimizers, the functional train state and jitted steps, orbax checkpoints, stop-on-signal,
TensorBoard events and progress bars; and the tile trainer (`build_trainer`, `load_trainer`,
`ModelParams`, the loss tables), imported on first use."""

from jaxwsi.lazy import lazy_names
from jaxwsi.train.checkpoint import Checkpointer, CheckpointError
from jaxwsi.train.events import EventLog
from jaxwsi.train.mesh import batch_sharding, data_mesh, replicated, shard_batch
from jaxwsi.train.optim import learning_rate_schedule, make_optimizer
from jaxwsi.train.progress import Progress
from jaxwsi.train.state import TrainState
from jaxwsi.train.step import make_eval_step, make_train_step
from jaxwsi.train.stop import StopRequest

# Tile-trainer names → their modules (imported on first access: the trainer pulls in the models).
_LAZY = {
    "AllLossDict": "jaxwsi.train.losses",
    "ClassificationLossDict": "jaxwsi.train.losses",
    "LinearLossDict": "jaxwsi.train.losses",
    "ModelParams": "jaxwsi.train.params",
    "RegressionLossDict": "jaxwsi.train.losses",
    "SurvivalLossDict": "jaxwsi.train.losses",
    "Trainer": "jaxwsi.train.trainer",
    "TrainerOptions": "jaxwsi.train.trainer",
    "build_trainer": "jaxwsi.train.trainer",
    "load_trainer": "jaxwsi.train.trainer",
}

__getattr__, __dir__ = lazy_names(__name__, _LAZY)


__all__ = [
    *_LAZY,
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
