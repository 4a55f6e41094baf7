"""Synthetic data for demos and tests (slides, tile sets)."""

__all__: list[str] = []
