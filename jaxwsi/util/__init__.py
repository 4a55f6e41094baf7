"""Helpers named as in Slideflow's ``slideflow.util``: SMAC search spaces."""

from jaxwsi.experiment.search_space import (
    broad_search_space,
    create_search_space,
    shallow_search_space,
)

__all__ = ["broad_search_space", "create_search_space", "shallow_search_space"]
