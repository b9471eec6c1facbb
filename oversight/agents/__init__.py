"""The behaviour of each role over the model protocol: base, critic, safety, judge, reviser,
human, verifier (claims against evidence), consistency (self-consistency and uncertainty
notes). Roles register by name (``@register_role``) so hierarchy YAML can use them; the runtime
finds them by capability (``Drafts``, ``Assesses``, ``Audits``, ``Ranks``, ``Revises``) and
serves each on the bus (``AgentService``)."""

from ._audit import AuditMixin as AuditMixin
from ._base import Agent as Agent
from ._base import EpisodeContext as EpisodeContext
from ._base import create_agent as create_agent
from ._base import register_role as register_role
from ._base import role_names as role_names
from ._capabilities import CAPABILITIES as CAPABILITIES
from ._capabilities import Assesses as Assesses
from ._capabilities import Audits as Audits
from ._capabilities import Drafts as Drafts
from ._capabilities import Ranks as Ranks
from ._capabilities import Revises as Revises
from ._capabilities import capabilities_of as capabilities_of
from ._service import AgentService as AgentService
from ._service import LiveEpisodes as LiveEpisodes
from ._service import ask as ask
from ._service import ask_assessors as ask_assessors
from ._service import request_topic as request_topic
from .base import BaseAgent as BaseAgent
from .consistency import ConsistencyAgent as ConsistencyAgent
from .critic import CriticAgent as CriticAgent
from .human import HumanAgent as HumanAgent
from .judge import JudgeAgent as JudgeAgent
from .reviser import ReviserAgent as ReviserAgent
from .safety import SafetyAgent as SafetyAgent
from .verifier import VerifierAgent as VerifierAgent

__all__ = [
    "CAPABILITIES",
    "Agent",
    "AgentService",
    "Assesses",
    "AuditMixin",
    "Audits",
    "BaseAgent",
    "ConsistencyAgent",
    "CriticAgent",
    "Drafts",
    "EpisodeContext",
    "HumanAgent",
    "JudgeAgent",
    "LiveEpisodes",
    "Ranks",
    "ReviserAgent",
    "Revises",
    "SafetyAgent",
    "VerifierAgent",
    "ask",
    "ask_assessors",
    "capabilities_of",
    "create_agent",
    "register_role",
    "request_topic",
    "role_names",
]
