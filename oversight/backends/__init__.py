"""Model backends behind one protocol (``generate`` and ``score``, both batched)."""

from ._ending import Finish as Finish
from ._ending import whole_sentences as whole_sentences
from ._protocol import ChatMessage as ChatMessage
from ._protocol import ChoiceScores as ChoiceScores
from ._protocol import GenerateRequest as GenerateRequest
from ._protocol import Generation as Generation
from ._protocol import ModelBackend as ModelBackend
from ._protocol import ScoreRequest as ScoreRequest
from ._protocol import backend_names as backend_names
from ._protocol import create_backend as create_backend
from ._protocol import register_backend as register_backend

__all__ = [
    "ChatMessage",
    "ChoiceScores",
    "Finish",
    "GenerateRequest",
    "Generation",
    "ModelBackend",
    "ScoreRequest",
    "backend_names",
    "create_backend",
    "register_backend",
    "whole_sentences",
]
