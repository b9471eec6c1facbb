"""Measuring overseers: labelled evaluation sets and the agent evaluation harness.

* :mod:`oversight.evaluation.sets` - the one registry of labelled sets (also used by
  ``oversight eval`` and the near-duplicate check of every training command);
"""

from .sets import REGISTRY as REGISTRY
from .sets import Example as Example
from .sets import LabelledSet as LabelledSet
from .sets import available_sets as available_sets
from .sets import default_data_dir as default_data_dir
from .sets import load_set as load_set

__all__ = [
    "REGISTRY",
    "Example",
    "LabelledSet",
    "available_sets",
    "default_data_dir",
    "load_set",
]
