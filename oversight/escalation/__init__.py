"""The human escalation queue: a persistent store of escalated cases, reviewers' claims and
decisions (``HumanQueue``), agreement statistics between reviewers, agents' accuracy from
human decisions (``audit_report``), reviewer accounts for the
web page, and the escalation policy that decides which episodes become cases. See
docs/queue.md."""

from .accounts import Reviewer as Reviewer
from .accounts import ReviewerAccounts as ReviewerAccounts
from .accounts import Session as Session
from .accounts import check_csrf as check_csrf
from .agreement import AgreementReport as AgreementReport
from .agreement import CaseAgreement as CaseAgreement
from .agreement import ReviewerAgreement as ReviewerAgreement
from .agreement import case_agreement as case_agreement
from .agreement import cohen_kappa as cohen_kappa
from .agreement import fleiss_kappa as fleiss_kappa
from .agreement import queue_agreement as queue_agreement
from .audits import AgentAccuracy as AgentAccuracy
from .audits import AuditReport as AuditReport
from .audits import audit_report as audit_report
from .audits import wilson_interval as wilson_interval
from .models import CASE_STATUSES as CASE_STATUSES
from .models import Candidate as Candidate
from .models import Case as Case
from .models import CaseStatus as CaseStatus
from .models import CaseSubmission as CaseSubmission
from .models import Decision as Decision
from .models import DecisionRecord as DecisionRecord
from .models import FinalDecision as FinalDecision
from .models import Lease as Lease
from .models import QueueCounts as QueueCounts
from .models import QueueEvent as QueueEvent
from .models import final_decision as final_decision
from .policy import TRIGGER_NAMES as TRIGGER_NAMES
from .policy import EscalationPolicy as EscalationPolicy
from .policy import EscalationTriggers as EscalationTriggers
from .policy import TriggerName as TriggerName
from .policy import load_policy as load_policy
from .queue import HumanQueue as HumanQueue
from .store import DEFAULT_URL as DEFAULT_URL

__all__ = [
    "CASE_STATUSES",
    "DEFAULT_URL",
    "TRIGGER_NAMES",
    "AgentAccuracy",
    "AgreementReport",
    "AuditReport",
    "Candidate",
    "Case",
    "CaseAgreement",
    "CaseStatus",
    "CaseSubmission",
    "Decision",
    "DecisionRecord",
    "EscalationPolicy",
    "EscalationTriggers",
    "FinalDecision",
    "HumanQueue",
    "Lease",
    "QueueCounts",
    "QueueEvent",
    "Reviewer",
    "ReviewerAccounts",
    "ReviewerAgreement",
    "Session",
    "TriggerName",
    "audit_report",
    "case_agreement",
    "check_csrf",
    "cohen_kappa",
    "final_decision",
    "fleiss_kappa",
    "load_policy",
    "queue_agreement",
    "wilson_interval",
]
