"""jaxwsi: whole-slide image and microscopy deep learning on JAX/Flax with a Rust TFRecord core.

The public API is re-exported here; sub-packages follow the data flow:
``io`` (TFRecords, loader) → ``slide`` (WSI → tiles) → ``data`` (datasets, pipelines, preprocessing).
"""

from jaxwsi._native import __version__

__all__ = ["__version__"]
