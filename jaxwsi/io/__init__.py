"""TFRecord reading, writing, indexing and the native interleaving loader."""

__all__: list[str] = []
