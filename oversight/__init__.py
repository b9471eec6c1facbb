"""oversight: constitutional AI oversight as a system of agents."""

from . import errors as errors
from .messages import Envelope as Envelope

__version__ = "0.1.0"

__all__ = ["Envelope", "errors"]
