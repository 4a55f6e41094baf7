"""Segmentation: U-Nets (2D ``unet2d``; anisotropic 3D ``unet_xy`` / ``unet_xy_zoom``) trained on
paired image folders from a YAML file on the shared training core, and sliding-window
prediction with Gaussian blending::

    config = jaxwsi.segment.load_config("nuclei.yaml")
    result = jaxwsi.segment.train(config)
    model = jaxwsi.segment.load_model("runs/nuclei")
    probability = model.predict(image)  # float32 foreground probability, same height × width

Names are imported on first use, so the ``jaxwsi`` command can read settings without JAX.
"""

from __future__ import annotations

from jaxwsi.lazy import lazy_names

# Public name → the module that defines it.
_LAZY = {
    "ConfigError": "jaxwsi.segment.config",
    "SegmentConfig": "jaxwsi.segment.config",
    "config_from_dict": "jaxwsi.segment.config",
    "load_config": "jaxwsi.segment.config",
    "SegmentDataError": "jaxwsi.segment.data",
    "OutOfMemoryError": "jaxwsi.segment.memory",
    "SegmentationModel": "jaxwsi.segment.saved",
    "load_model": "jaxwsi.segment.saved",
    "sliding_window": "jaxwsi.segment.tiling",
    "valid_sizes": "jaxwsi.segment.sizes",
    "TrainResult": "jaxwsi.segment.trainer",
    "train": "jaxwsi.segment.trainer",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
