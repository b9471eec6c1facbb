"""Compile a hierarchy file into the arrays the vectorised simulator runs on.

The plan lists the *reporters* of one candidate answer, in the order the runtime consults them:
every critic and the safety agent assess the candidate (they supervise the base), then each
supervision edge whose subject reports findings adds an *audit* reporter on the same cells, one
level higher (recursively: an agent that supervises an auditor audits the auditor's cells).
People (role ``human``) never report; they are where escalations go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..consensus import CompiledCore
from ..errors import ConfigError
from . import behaviour as bh
from .config import SimulationConfig

KIND_CODES = {"harm": 0, "overrefusal": 1, "neutral": 2}
ASSESSING_ROLES = ("critic", "safety")
AUDITING_ROLES = ("judge", "critic", "safety")


@dataclass
class Reporter:
    """An agent that reports findings on a candidate's cells."""

    agent: str
    """Agent name."""
    task: str
    """``critique``, ``safety_response`` or ``audit`` (keys the agent's own noise)."""
    level: int
    """Level in the supervision hierarchy (higher overrides lower in ``combine_reports``)."""
    behaviour: bh.AgentBehaviour
    """The agent's error model."""
    group: int
    """Index of its model group (agents with equal options share a latent)."""
    miss_threshold: np.ndarray
    """float32 ``[P]``: ``Phi^-1(miss rate)`` per principle."""
    false_alarm_threshold: np.ndarray
    """float32 ``[P]``: ``Phi^-1(false-alarm rate)`` per principle."""
    band: float = 0.1
    """Uncertainty band of ``verdict_from_probability``."""
    columns: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.intp))
    """int ``[k]``: principles an assessor checks (auditors: cells chosen per audit step)."""
    calls_per_candidate: int = 0
    """Model calls of one assessment (critic: one per principle; safety: request + answer)."""
    mode: str = "every"
    """Mode of the assessor's edge to the base: ``every``, ``sample`` or ``on-flag``."""
    rate: float = 1.0
    """Sampling rate of a ``sample`` edge."""
    edge: tuple[str, str] = ("", "")
    """(supervisor, subject) of the edge (keys the runtime's sampling draws)."""


@dataclass
class AuditStep:
    """``auditor`` re-checks every cell ``subject`` reported, gated by the edge's mode."""

    auditor: int
    """Index into :attr:`Plan.reporters`."""
    subject: int
    """Index into :attr:`Plan.reporters`."""
    mode: str
    rate: float


@dataclass
class JudgePlan:
    agent: str
    behaviour: bh.AgentBehaviour
    group: int
    threshold: float


@dataclass
class KernelTables:
    """A :class:`Plan` as arrays for the engine's compiled kernels (see :meth:`Plan.kernel_tables`).

    ``col_*`` arrays have one row per column (a reporter's probability on one principle);
    float32 constants are those numpy rounded the formulas' Python floats to.
    """

    assessors: np.ndarray
    deferred: np.ndarray
    calls_per_candidate: np.ndarray
    step_auditor: np.ndarray
    step_subject: np.ndarray
    step_mode: np.ndarray
    """int8 ``[S]``: 0 every, 1 on-flag, 2 sample."""
    step_rate: np.ndarray
    step_slot: np.ndarray
    severity: np.ndarray
    level: np.ndarray
    n_columns: int
    block_start: np.ndarray
    block_width: np.ndarray
    col_block: np.ndarray
    col_principle: np.ndarray
    col_group: np.ndarray
    col_weights: np.ndarray
    """``[K, 3]``: sqrt of correlation, model correlation and own weight."""
    col_thresholds: np.ndarray
    """``[K, 2]``: ``Phi^-1`` of the miss and false-alarm rates."""
    col_confidence: np.ndarray
    """``[K, 3]``: max_confidence - 0.5, 1 - calibration, calibration."""
    col_band: np.ndarray
    """``[K, 2]``: 0.5 + band, 0.5 - band (the verdict thresholds)."""
    biased_blocks: list[tuple[int, int, float]]
    """(first column, width, bias) of reporters with a log-odds bias (applied with numpy)."""


@dataclass
class Plan:
    """Everything the engine needs, compiled once per configuration."""

    principle_ids: list[str]
    kinds: np.ndarray
    """int8 ``[P]``: 0 harm, 1 over-refusal, 2 neutral."""
    severity: np.ndarray
    """float32 ``[P]``: principle severities."""
    has_template: np.ndarray
    """bool ``[P]``: the principle gives a refusal template (the reviser's last-round fallback)."""
    reporters: list[Reporter]
    """Assessors first (in edge order), then auditors."""
    assessors: list[int]
    """Reporters that assess the base's candidates directly."""
    audits: list[AuditStep]
    """Audit steps in the runtime's order (level by level)."""
    judge: JudgePlan | None
    base: bh.AgentBehaviour
    reviser: bh.AgentBehaviour | None
    groups: int
    max_rounds: int
    core: CompiledCore
    reviewers_per_case: int
    can_escalate: bool
    levels: dict[str, int] = field(default_factory=dict)
    _tables: KernelTables | None = field(default=None, repr=False, compare=False)

    def kernel_tables(self) -> KernelTables:
        """The reporters and audit steps as arrays, for the engine's compiled kernels (cached).

        Every reporter's probabilities on a candidate are *columns*, in *blocks* in the order
        of the random draws: each assessor of the base (its principles; ``on-flag`` ones after
        the others), then each auditor (every principle) in order of first audit step.
        """
        if self._tables is not None:
            return self._tables
        n_p = len(self.principle_ids)
        modes = {"every": 0, "on-flag": 1, "on_flag": 1, "sample": 2}
        deferred = np.array(
            [self.reporters[i].mode in ("on-flag", "on_flag") for i in self.assessors] or [False]
        )
        slots: dict[int, int] = {}
        for step in self.audits:
            slots.setdefault(step.auditor, len(slots))
        blocks: list[tuple[int, np.ndarray]] = [
            (i, np.asarray(self.reporters[i].columns, dtype=np.intp)) for i in self.assessors
        ]
        blocks += [(a, np.arange(n_p, dtype=np.intp)) for a in slots]
        widths = [len(cols) for _, cols in blocks]
        starts = np.concatenate([[0], np.cumsum(widths)]).astype(np.intp)
        n_k = int(starts[-1])
        col_block = np.zeros(n_k, dtype=np.intp)
        col_principle = np.zeros(n_k, dtype=np.intp)
        col_group = np.zeros(n_k, dtype=np.intp)
        col_weights = np.zeros((n_k, 3), dtype=np.float32)
        col_thresholds = np.zeros((n_k, 2), dtype=np.float32)
        col_confidence = np.zeros((n_k, 3), dtype=np.float32)
        col_band = np.zeros((n_k, 2), dtype=np.float32)
        biased: list[tuple[int, int, float]] = []
        for b, (i, cols) in enumerate(blocks):
            r = self.reporters[i]
            beh = r.behaviour
            own = max(0.0, 1.0 - beh.correlation - beh.model_correlation)
            span = slice(int(starts[b]), int(starts[b + 1]))
            col_block[span] = b
            col_principle[span] = cols
            col_group[span] = r.group
            # the float32 constants numpy used in behaviour.evidence / p_yes_from_evidence
            col_weights[span] = [
                math.sqrt(beh.correlation),
                math.sqrt(beh.model_correlation),
                math.sqrt(own),
            ]
            col_thresholds[span, 0] = r.miss_threshold[cols]
            col_thresholds[span, 1] = r.false_alarm_threshold[cols]
            col_confidence[span] = [
                beh.max_confidence - 0.5,
                1.0 - beh.calibration,
                beh.calibration,
            ]
            col_band[span] = [0.5 + r.band, 0.5 - r.band]
            if beh.bias:
                biased.append((span.start, span.stop - span.start, float(beh.bias)))
        self._tables = KernelTables(
            assessors=np.array(self.assessors, dtype=np.intp),
            deferred=deferred,
            calls_per_candidate=np.array(
                [r.calls_per_candidate for r in self.reporters], dtype=np.int64
            ),
            step_auditor=np.array([s.auditor for s in self.audits], dtype=np.intp),
            step_subject=np.array([s.subject for s in self.audits], dtype=np.intp),
            step_mode=np.array([modes.get(s.mode, 0) for s in self.audits], dtype=np.int8),
            step_rate=np.array([s.rate for s in self.audits], dtype=np.float32),
            step_slot=np.array([slots[s.auditor] for s in self.audits], dtype=np.intp),
            severity=np.asarray(self.severity, dtype=np.float32),
            level=np.array([r.level for r in self.reporters], dtype=np.int32),
            n_columns=n_k,
            block_start=starts[:-1].copy(),
            block_width=np.array(widths, dtype=np.intp),
            col_block=col_block,
            col_principle=col_principle,
            col_group=col_group,
            col_weights=col_weights,
            col_thresholds=col_thresholds,
            col_confidence=col_confidence,
            col_band=col_band,
            biased_blocks=biased,
        )
        return self._tables

    @property
    def depth(self) -> int:
        return max((r.level for r in self.reporters), default=0)

    @property
    def candidates(self) -> int:
        """Most candidates an episode can have (draft, revisions, template fallback)."""
        extra = (
            1 if self.reviser is not None and self.max_rounds > 0 and self.has_template.any() else 0
        )
        return 1 + (self.max_rounds if self.reviser is not None else 0) + extra


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _model_options(spec: Any, model: str | None, config: SimulationConfig) -> dict[str, Any]:
    models = _get(spec, "models", {}) or {}
    entry = models.get(model) if model else None
    options: dict[str, Any] = {}
    if entry is not None and _get(entry, "backend") == "simulated":
        options.update(dict(_get(entry, "options", {}) or {}))
    if model and model in config.model_options:
        options.update(config.model_options[model])
    options.update(config.agent_options)
    return options


def compile_plan(spec: Any, config: SimulationConfig, core: CompiledCore | None = None) -> Plan:
    """Build the :class:`Plan` of a loaded hierarchy (:class:`oversight.hierarchy.HierarchySpec`).

    The order of assessments and audits is the runtime's (``Runtime._assess``): assessors of the
    base (``on-flag`` ones only when a peer flagged the candidate), then, level by level, every
    auditor of a reporting agent re-checks each of its cells (``every``; ``on-flag``: the
    subject's verdict is not ``satisfied``; ``sample``: a draw per cell).
    """
    policy = _get(spec, "policy")
    if core is None:
        from ..priority import PriorityGraph

        policy = _policy_with_overrides(policy, config)
        core = CompiledCore.from_config(PriorityGraph(spec.constitution), policy)
    elif config.audit_rate is not None or config.low_confidence is not None:
        core = _core_with_overrides(core, config)
    principle_ids = list(core.principle_ids)
    p_index = {pid: i for i, pid in enumerate(principle_ids)}
    constitution = _get(spec, "constitution")
    specs = [
        constitution.principle(pid) if constitution is not None else None for pid in principle_ids
    ]
    severities = np.array(
        [float(s.severity) if s is not None else 1.0 for s in specs], dtype=np.float32
    )
    has_template = np.array([bool(getattr(s, "refusal_template", None)) for s in specs], dtype=bool)
    agents = list(_get(spec, "agents", []))
    by_name = {_get(a, "name"): a for a in agents}
    levels: dict[str, int] = dict(spec.levels()) if hasattr(spec, "levels") else {}
    depth = config.depth

    def keep(name: str) -> bool:
        return depth is None or levels.get(name, 1) <= depth

    behaviours: dict[str, bh.AgentBehaviour] = {}
    groups: dict[str, int] = {}

    def behaviour_of(name: str) -> tuple[bh.AgentBehaviour, int]:
        if name not in behaviours:
            agent = by_name[name]
            where = f"agent {name!r} (model {_get(agent, 'model')!r}) options"
            b = bh.parse_behaviour(_model_options(spec, _get(agent, "model"), config), where=where)
            behaviours[name] = b
            groups.setdefault(b.group(), len(groups))
        b = behaviours[name]
        return b, groups[b.group()]

    reporters: list[Reporter] = []
    index: dict[str, int] = {}

    def reporter(name: str, task: str) -> int:
        if name in index:
            return index[name]
        agent = by_name[name]
        b, g = behaviour_of(name)
        rates = [b.rates(name, pid) for pid in principle_ids]
        options = _get(agent, "options", {}) or {}
        reporters.append(
            Reporter(
                agent=name,
                task=task,
                level=levels.get(name, 1),
                behaviour=b,
                group=g,
                miss_threshold=bh.error_threshold([r[0] for r in rates]).astype(np.float32),
                false_alarm_threshold=bh.error_threshold([r[1] for r in rates]).astype(np.float32),
                band=float(options.get("band", 0.1)),
            )
        )
        index[name] = len(reporters) - 1
        return index[name]

    edges = list(_get(spec, "supervision", []) or [])
    base_agents = [a for a in agents if _get(a, "role") == "base"]
    if not base_agents:
        raise ConfigError("the hierarchy has no agent with role 'base' to draft answers")
    base_name = _get(base_agents[0], "name")
    assessors: list[int] = []
    for e in edges:
        name = _get(e, "supervisor")
        role = _get(by_name.get(name), "role")
        if _get(e, "subject") != base_name or role not in ASSESSING_ROLES or not keep(name):
            continue
        agent = by_name[name]
        if role == "safety":
            options = _get(agent, "options", {}) or {}
            pids = [str(options.get("principle", "harm"))]
        else:
            pids = list(_get(agent, "principles", ()) or ())
        unknown = [p for p in pids if p not in p_index]
        if unknown:
            raise ConfigError(f"agent {name!r}: principles {unknown} are not in the constitution")
        i = reporter(name, "safety_response" if role == "safety" else "critique")
        r = reporters[i]
        r.columns = np.array([p_index[p] for p in pids], dtype=np.intp)
        r.calls_per_candidate = 2 if role == "safety" else len(pids)
        r.mode = str(_get(e, "mode", "every"))
        r.rate = _rate(e, config)
        r.edge = (name, base_name)
        if i not in assessors:
            assessors.append(i)
    # audits: breadth-first from the assessors, subjects in level order (Runtime._assess)
    audits: list[AuditStep] = []
    frontier = {reporters[i].agent for i in assessors}
    seen = set(frontier)
    while frontier:
        next_frontier: set[str] = set()
        # ties of level in reporter order: set order would vary with PYTHONHASHSEED and with
        # it the order of the random draws, i.e. a seed's result from one process to the next
        for subject in sorted(frontier, key=lambda n: (levels.get(n, 0), index[n])):
            for e in edges:
                auditor = _get(e, "supervisor")
                if _get(e, "subject") != subject:
                    continue
                if _get(by_name.get(auditor), "role") not in AUDITING_ROLES or not keep(auditor):
                    continue
                a = reporter(auditor, "audit")
                audits.append(
                    AuditStep(a, index[subject], str(_get(e, "mode", "every")), _rate(e, config))
                )
                if auditor not in seen:
                    seen.add(auditor)
                    next_frontier.add(auditor)
        frontier = next_frontier
    judges = [a for a in agents if _get(a, "role") == "judge" and keep(_get(a, "name"))]
    judge = None
    if judges:
        name = _get(judges[0], "name")
        b, g = behaviour_of(name)
        judge = JudgePlan(name, b, g, float(bh.error_threshold(b.judge_error_rate)))
    base_b, _ = behaviour_of(base_name)
    reviser_agents = [a for a in agents if _get(a, "role") == "reviser"]
    reviser_b = behaviour_of(_get(reviser_agents[0], "name"))[0] if reviser_agents else None
    kind_overrides = {k: v for b in behaviours.values() for k, v in b.principle_kinds.items()}
    kinds = np.array(
        [KIND_CODES[bh.principle_kind(pid, kind_overrides)] for pid in principle_ids], dtype=np.int8
    )
    settings = _get(spec, "settings", {})
    if int(_get(settings, "best_of_n", 1) or 1) > 1:
        raise ConfigError(
            "settings.best_of_n > 1 is not simulated (the vectorised simulator draws one "
            "revision per round); set best_of_n: 1 for a simulation"
        )
    max_rounds = (
        config.max_revision_rounds
        if config.max_revision_rounds is not None
        else int(_get(settings, "max_revision_rounds", 2) or 0)
    )
    reviewers = config.reviewers_per_case or int(_get(policy, "reviewers_per_case", 1) or 1)
    has_human = any(_get(a, "role") == "human" for a in agents)
    can_escalate = _policy_can_escalate(core)
    if can_escalate and not has_human:
        raise ConfigError(
            "the escalation policy can escalate, but the hierarchy has no agent with role "
            "'human' to escalate to; add e.g. {name: people, role: human} with a supervision "
            "edge to it, or turn every escalation trigger off"
        )
    if can_escalate and config.human_capacity <= 0:
        raise ConfigError(
            "human_capacity is 0 but the escalation policy can escalate: escalated cases would "
            "wait forever; give people a capacity (case reviews per day) or turn the triggers off"
        )
    return Plan(
        principle_ids=principle_ids,
        kinds=kinds,
        severity=severities,
        has_template=has_template,
        reporters=reporters,
        assessors=assessors,
        audits=audits,
        judge=judge,
        base=base_b,
        reviser=reviser_b,
        groups=max(1, len(groups)),
        max_rounds=max_rounds,
        core=core,
        reviewers_per_case=reviewers,
        can_escalate=can_escalate,
        levels=levels,
    )


def _policy_can_escalate(core: CompiledCore) -> bool:
    return bool(
        core.disagreement
        or core.unresolved
        or core.low_confidence > 0
        or core.audit_rate > 0
        or np.isfinite(core.severity_threshold).any()
    )


def _rate(edge: Any, config: SimulationConfig) -> float:
    if str(_get(edge, "mode", "every")) == "sample":
        if config.sample_rate is not None:
            return config.sample_rate
        return float(_get(edge, "rate", 1.0) if _get(edge, "rate") is not None else 1.0)
    return 1.0


def _policy_with_overrides(policy: Any, config: SimulationConfig) -> Any:
    if config.audit_rate is None and config.low_confidence is None:
        return policy
    triggers = policy.triggers
    update: dict[str, Any] = {}
    if config.audit_rate is not None:
        update["audit_rate"] = config.audit_rate
    if config.low_confidence is not None:
        update["low_confidence"] = config.low_confidence
    return policy.model_copy(update={"triggers": triggers.model_copy(update=update)})


def _core_with_overrides(core: CompiledCore, config: SimulationConfig) -> CompiledCore:
    import dataclasses

    update: dict[str, Any] = {}
    if config.audit_rate is not None:
        update["audit_rate"] = config.audit_rate
    if config.low_confidence is not None:
        update["low_confidence"] = config.low_confidence
    return dataclasses.replace(core, **update)
