"""Re-decide a run's episodes under another constitution, from their recorded findings only.

``oversight replay RUN --constitution B`` reads ``runs/RUN/journal.jsonl``, rebuilds each
finished episode's findings (critiques, safety assessments, audits, the judge's last ranking)
exactly as the coordinator combined them, and runs the decision core of constitution ``B`` over
them, with no model call. It lists the episodes whose decision (consensus or escalation, the
chosen candidate, the strategy) changes.

Findings can only be replayed for the principles someone assessed. A principle of ``B`` that no
agent assessed in an episode is reported as **unassessed** (the decision treats it as not
violated, and the report says so, instead of calling it satisfied); findings for principles
``B`` lacks are dropped and counted; a principle whose version in ``B`` differs from the version
its findings were made against is reported as **stale**. No revision is replayed: candidates are
the ones recorded, and the decision is the final one (no rounds left).

Replay needs schema 2 journals (each episode records the constitution that decided it and the
candidate an escalation proposed); an older journal gets a :class:`~oversight.errors.JournalError`
saying so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .agents import EpisodeContext
from .consensus import (
    ACTION_NAMES,
    STRATEGY_NAMES,
    EpisodeFindings,
    decide,
    finding_of,
    trigger_names,
    violated_principles,
)
from .constitution import Constitution
from .errors import JournalError
from .governance import ConstitutionSet, Variant, make_variant
from .journal import read_journal
from .messages import (
    SCHEMA_VERSION,
    Audit,
    Consensus,
    ConstitutionApplied,
    Critique,
    Draft,
    Envelope,
    Escalation,
    Judgment,
    Prompt,
    Resolution,
    Revision,
    SafetyAssessment,
)

REPLAY_MIN_SCHEMA = 2
"""The oldest journal schema replay reads (schema 2 records each episode's constitution)."""


@dataclass
class Decision:
    """One episode's decision: recorded in the journal, or replayed."""

    action: str
    """``consensus`` or ``escalate``."""
    chosen: str | None
    """The chosen (or, for an escalation, proposed) candidate."""
    strategy: str
    """The resolution strategy (``none`` when nothing conflicted)."""
    triggers: tuple[str, ...] = ()
    """Escalation triggers."""
    rationale: str = ""
    """Why, in a sentence (the priority path or the cost comparison)."""

    def same_as(self, other: Decision) -> bool:
        return (self.action, self.chosen, self.strategy) == (
            other.action,
            other.chosen,
            other.strategy,
        )

    def short(self) -> str:
        text = f"{self.action} {self.chosen or '-'} by {self.strategy}"
        return text + (f" ({', '.join(self.triggers)})" if self.triggers else "")


@dataclass
class EpisodeReplay:
    """One episode, decided again."""

    episode: str
    prompt_id: str
    context: dict[str, str]
    recorded_constitution: str
    """``name vVERSION + overlays`` of the constitution that decided it in the run."""
    replayed_constitution: str
    """The same for the replay."""
    recorded: Decision
    replayed: Decision
    unassessed: list[str] = field(default_factory=list)
    """Principles of the replay's constitution that no agent assessed in this episode."""
    new_unassessed: list[str] = field(default_factory=list)
    """Of those, the ones the run's constitution did not have (new in the replay's)."""
    dropped: list[str] = field(default_factory=list)
    """Principles with findings that the replay's constitution lacks (their findings unused)."""
    stale: list[str] = field(default_factory=list)
    """Principles whose findings were made against another version than the replay's."""

    @property
    def changed(self) -> bool:
        return not self.recorded.same_as(self.replayed)


@dataclass
class ReplayReport:
    """What :func:`replay_run` found."""

    run: str
    constitution: str
    """The constitution replayed (``per request`` when the hierarchy's selection was used)."""
    episodes: list[EpisodeReplay] = field(default_factory=list)
    skipped: int = 0
    """Episodes with no decision to compare (failed or unfinished)."""

    @property
    def changed(self) -> list[EpisodeReplay]:
        return [e for e in self.episodes if e.changed]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "constitution": self.constitution,
            "episodes": len(self.episodes),
            "changed": len(self.changed),
            "skipped": self.skipped,
            "unassessed_new_principles": sorted(
                {p for e in self.episodes for p in e.new_unassessed}
            ),
            "decisions": [
                {**asdict(e), "changed": e.changed}
                for e in self.episodes
                if e.changed or e.new_unassessed or e.stale
            ],
        }

    def format(self, *, show_all: bool = False) -> str:
        """The report as lines a person reads."""
        lines = [
            f"replayed {len(self.episodes)} episodes of run {self.run!r} under "
            f"{self.constitution} (no model calls): {len(self.changed)} decisions change"
            + (f", {self.skipped} skipped (failed or unfinished)" if self.skipped else "")
        ]
        new = sorted({p for e in self.episodes for p in e.new_unassessed})
        if new:
            lines.append(
                f"unassessed: {', '.join(new)} (new in this constitution; no agent assessed "
                "them in the run, so the replay treats them as not violated: they are not "
                "known to be satisfied)"
            )
        stale = sorted({p for e in self.episodes for p in e.stale})
        if stale:
            lines.append(
                f"stale: {', '.join(stale)} (findings were made against another version of "
                "the principle)"
            )
        dropped = sorted({p for e in self.episodes for p in e.dropped})
        if dropped:
            lines.append(f"dropped: findings for {', '.join(dropped)} (not in this constitution)")
        for e in self.episodes:
            if not (e.changed or show_all):
                continue
            mark = "CHANGED" if e.changed else "same"
            lines.append(
                f"{mark} {e.prompt_id} [{e.episode[:8]}]: {e.recorded.short()} under "
                f"{e.recorded_constitution} -> {e.replayed.short()} under "
                f"{e.replayed_constitution}"
            )
            if e.replayed.rationale:
                lines.append(f"    {e.replayed.rationale}")
        return "\n".join(lines)


def _label(name: str, version: str, overlays: Sequence[str]) -> str:
    return f"{name} v{version}" + "".join(f" + {o}" for o in overlays)


def check_schema(envs: Sequence[Envelope], path: Path) -> None:
    """JournalError unless every envelope is of a schema replay reads."""
    versions = sorted({e.schema_version for e in envs})
    old = [v for v in versions if v < REPLAY_MIN_SCHEMA]
    new = [v for v in versions if v > SCHEMA_VERSION]
    if old:
        raise JournalError(
            f"{path}: journal written with envelope schema version {old[0]}; replay needs "
            f"version {REPLAY_MIN_SCHEMA} or later, which records the constitution each episode "
            "was decided under and the candidate an escalation proposed. Run the prompts again "
            "with this version of oversight to get a journal replay can read."
        )
    if new:
        raise JournalError(
            f"{path}: journal written with envelope schema version {new[0]}, newer than this "
            f"oversight ({SCHEMA_VERSION}); upgrade oversight to replay it."
        )


def _recorded(envs: Sequence[Envelope]) -> Decision | None:
    resolution = next((e.payload for e in envs if isinstance(e.payload, Resolution)), None)
    strategy = resolution.strategy if resolution is not None else "none"
    why = resolution.rationale if resolution is not None else ""
    for env in reversed(envs):
        p = env.payload
        if isinstance(p, Consensus):
            return Decision("consensus", p.candidate_id, p.strategy, (), why)
        if isinstance(p, Escalation):
            return Decision("escalate", p.proposed, strategy, tuple(p.triggers), why)
    return None


def replay_episode(
    envs: Sequence[Envelope], variant: Variant, levels: dict[str, int], settings: Any
) -> EpisodeReplay | None:
    """Decide one episode's recorded findings under ``variant`` (None when it has no decision)."""
    prompt_env = next((e for e in envs if isinstance(e.payload, Prompt)), None)
    applied = next((e.payload for e in envs if isinstance(e.payload, ConstitutionApplied)), None)
    recorded = _recorded(envs)
    if prompt_env is None or applied is None or recorded is None:
        return None
    prompt = prompt_env.payload
    assert isinstance(prompt, Prompt)
    constitution = variant.constitution
    known = set(constitution.ids)
    versions = constitution.versions()
    findings = EpisodeFindings(variant.core, levels)
    order: list[str] = []
    assessed: set[str] = set()
    dropped: set[str] = set()
    stale: set[str] = set()
    judge_scores: dict[str, float] = {}
    judge_conf = 0.0
    for env in envs:
        p = env.payload
        if isinstance(p, Draft | Revision):
            if p.candidate_id not in order:
                order.append(p.candidate_id)
        elif isinstance(p, Judgment):
            judge_scores, judge_conf = dict(p.scores), p.confidence
        elif isinstance(p, Critique | SafetyAssessment | Audit):
            pid = p.principle_id
            if pid not in known:
                dropped.add(pid)
                continue
            if isinstance(p, Critique | SafetyAssessment) and p.principle_version != versions[pid]:
                stale.add(pid)
            verdict, severity, confidence = finding_of(p, variant.severity[pid])
            if isinstance(p, SafetyAssessment):
                findings.note_safety(p.candidate_id, p.action)
            findings.add(env.sender, p.candidate_id, pid, verdict, severity, confidence, env.id)
            assessed.add(pid)
    if not order:
        return None
    ctx = EpisodeContext(
        run=prompt_env.run,
        episode=prompt_env.episode,
        prompt=prompt,
        constitution=constitution,
        settings=settings,
    )
    batch = findings.batch(
        order,
        judge_scores=judge_scores,
        judge_confidence=judge_conf,
        context=prompt.context,
        audit_draw=ctx.draw("audit"),
        rounds_left=0,
    )
    decision = decide(batch, variant.core)
    chosen = order[int(decision.chosen[0])]
    strategy = STRATEGY_NAMES[int(decision.strategy[0])]
    action = ACTION_NAMES[int(decision.action[0])]
    why = ""
    if strategy != "none":
        scores = {c: round(float(decision.cost[0][i]), 4) for i, c in enumerate(order)}
        _, why = variant.graph.explain(
            strategy,
            chosen,
            violated_principles(batch, variant.core, order),
            scores,
            prompt.context,
            margin=variant.core.weighted_margin,
        )
    unassessed = [pid for pid in constitution.ids if pid not in assessed]
    c = constitution
    return EpisodeReplay(
        episode=prompt_env.episode,
        prompt_id=prompt.prompt_id,
        context=dict(prompt.context),
        recorded_constitution=_label(applied.name, applied.version, applied.overlays),
        replayed_constitution=_label(c.name, c.version, c.overlays),
        recorded=recorded,
        replayed=Decision(
            "escalate" if action == "escalate" else "consensus",
            chosen,
            strategy,
            trigger_names(int(decision.triggers[0])),
            why,
        ),
        unassessed=unassessed,
        new_unassessed=[pid for pid in unassessed if pid not in applied.principles],
        dropped=sorted(dropped),
        stale=sorted(stale),
    )


def replay_run(
    run_dir: str | Path,
    spec: Any,
    constitution: Constitution | None = None,
) -> ReplayReport:
    """Replay every decided episode of a run.

    ``spec`` is the run's hierarchy (for agent levels, the escalation policy and the seed);
    ``constitution`` the one to decide under, or None to use the hierarchy's per-request
    selection (which reproduces the run when nothing changed).
    """
    path = Path(run_dir) / "journal.jsonl"
    if not path.is_file():
        raise JournalError(f"{run_dir}: no journal.jsonl here; pass a run folder (runs/<name>)")
    scan = read_journal(path)
    if not scan.envelopes:
        raise JournalError(f"{path}: the journal is empty; nothing to replay")
    check_schema(scan.envelopes, path)
    levels = dict(spec.levels())
    if constitution is not None:
        fixed: Variant | None = make_variant(constitution, spec.policy)
        label = _label(constitution.name, constitution.version, constitution.overlays)
        selection: ConstitutionSet | None = None
    else:
        fixed, selection = None, spec.constitutions
        label = "the hierarchy's per-request constitutions"
    report = ReplayReport(run=scan.envelopes[0].run, constitution=label)
    for envs in scan.by_episode().values():
        prompt = next((e.payload for e in envs if isinstance(e.payload, Prompt)), None)
        if prompt is None:
            report.skipped += 1
            continue
        assert isinstance(prompt, Prompt)
        variant = fixed if fixed is not None else selection.for_context(prompt.context)  # type: ignore[union-attr]
        result = replay_episode(envs, variant, levels, spec.settings)
        if result is None:
            report.skipped += 1
        else:
            report.episodes.append(result)
    report.episodes.sort(key=lambda e: e.prompt_id)
    return report


__all__ = [
    "REPLAY_MIN_SCHEMA",
    "Decision",
    "EpisodeReplay",
    "ReplayReport",
    "check_schema",
    "replay_episode",
    "replay_run",
]
