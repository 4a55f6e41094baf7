"""Datasets, Grain pipelines and preprocessing (augmentation, stain normalization)."""

__all__: list[str] = []
