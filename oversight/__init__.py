"""oversight: constitutional AI oversight as a system of agents.

The public surface is re-exported here; submodules hold the implementation (see
docs/architecture.md for who owns what).
"""

from . import errors as errors
from .agents import Agent as Agent
from .agents import EpisodeContext as EpisodeContext
from .agents import register_role as register_role
from .backends import ChoiceScores as ChoiceScores
from .backends import GenerateRequest as GenerateRequest
from .backends import Generation as Generation
from .backends import ModelBackend as ModelBackend
from .backends import ScoreRequest as ScoreRequest
from .backends import create_backend as create_backend
from .backends import register_backend as register_backend
from .bus import Bus as Bus
from .bus import HardBlock as HardBlock
from .bus import JournalInterceptor as JournalInterceptor
from .bus import VisibilityFilter as VisibilityFilter
from .consensus import CompiledCore as CompiledCore
from .consensus import FindingsBatch as FindingsBatch
from .consensus import decide as decide
from .constitution import Constitution as Constitution
from .constitution import Overlay as Overlay
from .constitution import Principle as Principle
from .constitution import load_cai_principles as load_cai_principles
from .constitution import load_constitution as load_constitution
from .escalation import CaseSubmission as CaseSubmission
from .escalation import Decision as Decision
from .escalation import HumanQueue as HumanQueue
from .escalation.policy import EscalationPolicy as EscalationPolicy
from .escalation.policy import load_policy as load_policy
from .export import export_run as export_run
from .hierarchy import HierarchySpec as HierarchySpec
from .hierarchy import load_hierarchy as load_hierarchy
from .journal import read_journal as read_journal
from .messages import Adjudication as Adjudication
from .messages import Audit as Audit
from .messages import Conflict as Conflict
from .messages import Consensus as Consensus
from .messages import Critique as Critique
from .messages import Draft as Draft
from .messages import Envelope as Envelope
from .messages import Escalation as Escalation
from .messages import Failure as Failure
from .messages import Judgment as Judgment
from .messages import Prompt as Prompt
from .messages import Resolution as Resolution
from .messages import Revision as Revision
from .messages import SafetyAssessment as SafetyAssessment
from .messages import ToolCall as ToolCall
from .messages import Turn as Turn
from .priority import PriorityGraph as PriorityGraph
from .prompts import load_prompts as load_prompts
from .runtime import RunResult as RunResult
from .runtime import Runtime as Runtime

__version__ = "0.1.0"

__all__ = [
    "Adjudication",
    "Agent",
    "Audit",
    "Bus",
    "CaseSubmission",
    "ChoiceScores",
    "CompiledCore",
    "Conflict",
    "Consensus",
    "Constitution",
    "Critique",
    "Decision",
    "Draft",
    "Envelope",
    "EpisodeContext",
    "Escalation",
    "EscalationPolicy",
    "Failure",
    "FindingsBatch",
    "GenerateRequest",
    "Generation",
    "HardBlock",
    "HierarchySpec",
    "HumanQueue",
    "JournalInterceptor",
    "Judgment",
    "ModelBackend",
    "Overlay",
    "Principle",
    "PriorityGraph",
    "Prompt",
    "Resolution",
    "Revision",
    "RunResult",
    "Runtime",
    "SafetyAssessment",
    "ScoreRequest",
    "ToolCall",
    "Turn",
    "VisibilityFilter",
    "create_backend",
    "decide",
    "errors",
    "export_run",
    "load_cai_principles",
    "load_constitution",
    "load_hierarchy",
    "load_policy",
    "load_prompts",
    "read_journal",
    "register_backend",
    "register_role",
]
