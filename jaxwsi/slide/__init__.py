"""Whole-slide image reading, tiling, QC, ROIs and tile extraction."""

__all__: list[str] = []
