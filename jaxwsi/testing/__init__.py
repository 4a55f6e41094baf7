"""Synthetic data for demos and tests (slides, tile sets)."""

from jaxwsi.testing.synthetic import NUM_TISSUE_CLASSES, synthetic_slide

__all__ = ["NUM_TISSUE_CLASSES", "synthetic_slide"]
