"""jaxwsi: whole-slide image and microscopy deep learning on JAX/Flax with a Rust TFRecord core.

The public API is re-exported here; sub-packages follow the data flow:
``io`` (TFRecords, loader) → ``slide`` (WSI → tiles) → ``data`` (datasets, pipelines,
preprocessing) → ``norm`` (stain normalization).
"""

from jaxwsi._native import __version__
from jaxwsi.data import Dataset
from jaxwsi.project import Project, create_project, load_project

__all__ = ["Dataset", "Project", "__version__", "create_project", "load_project"]
