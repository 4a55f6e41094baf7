"""Segmentation: U-Nets (2D, anisotropic 3D ``unet_xy``/``unet_xy_zoom``) trained on paired image
folders from a YAML file, and sliding-window prediction with Gaussian blending.

    config = jaxwsi.segment.load_config("nuclei.yaml")
    result = jaxwsi.segment.train(config)
    model = jaxwsi.segment.load_model("runs/nuclei")
    probability = model.predict(image)           # float32 foreground probability, same H×W
"""

from jaxwsi.segment.config import ConfigError, SegmentConfig, config_from_dict, load_config

__all__ = ["ConfigError", "SegmentConfig", "config_from_dict", "load_config"]
