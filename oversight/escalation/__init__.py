"""The human escalation queue: a persistent store of escalated cases, reviewers' claims and
decisions (``HumanQueue``), and agreement statistics between reviewers. See docs/queue.md."""

from .queue import CASE_STATUSES as CASE_STATUSES
from .queue import Candidate as Candidate
from .queue import Case as Case
from .queue import CaseStatus as CaseStatus
from .queue import CaseSubmission as CaseSubmission
from .queue import Decision as Decision
from .queue import DecisionRecord as DecisionRecord
from .queue import FinalDecision as FinalDecision
from .queue import HumanQueue as HumanQueue
from .queue import Lease as Lease
from .queue import QueueCounts as QueueCounts
from .queue import QueueEvent as QueueEvent
from .queue import final_decision as final_decision
from .store import DEFAULT_URL as DEFAULT_URL

__all__ = [
    "CASE_STATUSES",
    "DEFAULT_URL",
    "Candidate",
    "Case",
    "CaseStatus",
    "CaseSubmission",
    "Decision",
    "DecisionRecord",
    "FinalDecision",
    "HumanQueue",
    "Lease",
    "QueueCounts",
    "QueueEvent",
    "final_decision",
]
