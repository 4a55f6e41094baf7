"""Multiple-instance learning: a slide is a bag of tile feature vectors with the slide's label.

Feature bags (`extract_features`, one ``{slide}.npz`` per slide plus ``bags_config.json``;
CLAM/TRIDENT ``.h5`` bags are read as they are), MIL models in Flax NNX registered with kind
``"mil"`` (`jaxwsi.mil.models`), `mil_config` / `train_mil` on the shared training core,
`eval_mil` / `predict_mil`, and `predict_slide` straight from a whole-slide image.

Names are imported on first use, so the ``jaxwsi`` command and ``jaxwsi.mil.config`` load no JAX.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jaxwsi.lazy import lazy_names

if TYPE_CHECKING:
    from jaxwsi.mil.bags import Bag, find_bags, load_bags, read_bag, read_bags_config, write_bag
    from jaxwsi.mil.config import MILConfig, mil_config
    from jaxwsi.mil.errors import BagError, MILConfigError
    from jaxwsi.mil.extract import extract_features
    from jaxwsi.mil.extractor import FeatureExtractor, feature_extractor
    from jaxwsi.mil.predict import eval_mil, predict_mil
    from jaxwsi.mil.saved import load_mil_model
    from jaxwsi.mil.slide import SlidePrediction, predict_slide
    from jaxwsi.mil.train import train_mil

# Public name → the module that defines it.
_LAZY = {
    "Bag": ".bags",
    "find_bags": ".bags",
    "load_bags": ".bags",
    "read_bag": ".bags",
    "read_bags_config": ".bags",
    "write_bag": ".bags",
    "MILConfig": ".config",
    "mil_config": ".config",
    "BagError": ".errors",
    "MILConfigError": ".errors",
    "extract_features": ".extract",
    "FeatureExtractor": ".extractor",
    "feature_extractor": ".extractor",
    "eval_mil": ".predict",
    "predict_mil": ".predict",
    "load_mil_model": ".saved",
    "SlidePrediction": ".slide",
    "predict_slide": ".slide",
    "train_mil": ".train",
}

__all__ = [
    "Bag",
    "BagError",
    "FeatureExtractor",
    "MILConfig",
    "MILConfigError",
    "SlidePrediction",
    "eval_mil",
    "extract_features",
    "feature_extractor",
    "find_bags",
    "load_bags",
    "load_mil_model",
    "mil_config",
    "predict_mil",
    "predict_slide",
    "read_bag",
    "read_bags_config",
    "train_mil",
    "write_bag",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
