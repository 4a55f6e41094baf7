"""A SMAC3 search on the main job's project: learning rate, dropout and hidden layers of the
small CNN, 6 trials, each validated on a fixed third of the patients; objective 1 - slide AUC
at the last epoch (Slideflow's), random-forest facade.

command:  bash experiments/run.sh --no-progress   # makes experiments/out/quickstart/project
          .venv/bin/python experiments/smac_search.py
expected: 6 trials in models/{id}-SMAC/run_history.csv, a best configuration inside the space
          with slide AUC 1.0 (cost 0.0); the measured table is in README.md (Experiments).
"""

from pathlib import Path

import jaxwsi
from jaxwsi.experiment.parallel import import_all

HERE = Path(__file__).resolve().parent
import_all([str(HERE / "small_cnn.py")])  # registers "small_cnn"

project = jaxwsi.load_project(HERE / "out" / "quickstart" / "project")
hp = jaxwsi.ModelParams(
    tile_px=64,
    tile_um=128,
    model="small_cnn",
    pooling="avg",
    epochs=[2],
    batch_size=32,
    augment="xyr",
    training_balance="category",
)
space = jaxwsi.util.create_search_space(
    learning_rate=(1e-4, 1e-2), dropout=(0.0, 0.5), hidden_layers=[0, 1, 2]
)
result = project.smac_search(
    "tissue",
    hp,
    space,
    smac_limit=6,
    smac_metric="slide_auc",
    val_strategy="fixed",
    val_fraction=0.34,
    max_tiles=48,
    trainer_options={"progress": False},
)
print(result.history.to_string(index=False))
print(f"best: {result.best} (cost {result.best_cost:.4f})")
