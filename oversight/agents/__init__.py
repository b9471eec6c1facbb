"""The behaviour of each role over the model protocol: base, critic, safety, judge, reviser,
human. Roles register by name (``@register_role``) so hierarchy YAML can use them."""

from ._audit import AuditMixin as AuditMixin
from ._base import Agent as Agent
from ._base import EpisodeContext as EpisodeContext
from ._base import create_agent as create_agent
from ._base import register_role as register_role
from ._base import role_names as role_names
from .base import BaseAgent as BaseAgent
from .critic import CriticAgent as CriticAgent
from .human import HumanAgent as HumanAgent
from .judge import JudgeAgent as JudgeAgent
from .reviser import ReviserAgent as ReviserAgent
from .safety import SafetyAgent as SafetyAgent

__all__ = [
    "Agent",
    "AuditMixin",
    "BaseAgent",
    "CriticAgent",
    "EpisodeContext",
    "HumanAgent",
    "JudgeAgent",
    "ReviserAgent",
    "SafetyAgent",
    "create_agent",
    "register_role",
    "role_names",
]
