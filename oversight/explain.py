"""The preference chain behind one episode, case or training row, as data and as text.

``oversight explain RUN --episode ID`` (or ``--prompt``, ``--case``, ``--row sft.jsonl:3``)
walks the run's journal and shows, in order: the prompt and its context, the constitution and
overlays that applied (and the ``select`` entries that chose them), every candidate, every
finding with its principle's version, the judge's ranking, the conflict and the priority path
that resolved it, the consensus or escalation, and the people's decisions. The review app shows
the same chain as a page (``/explain/{run}/{episode}``, ``/cases/{id}/explain``).

Everything here is read from records; nothing is re-decided (``oversight replay`` does that).
Candidate texts, critiques and reviewer rationales are untrusted data: the text form prints them
as they are, the page escapes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError, JournalError
from .journal import read_journal
from .messages import (
    Adjudication,
    Audit,
    Conflict,
    Consensus,
    ConstitutionApplied,
    Critique,
    Draft,
    Envelope,
    Escalation,
    Failure,
    Judgment,
    Prompt,
    Resolution,
    Revision,
    SafetyAssessment,
)


@dataclass
class PreferenceChain:
    """Why an episode's answer was preferred, from prompt to training target."""

    run: str
    episode: str
    prompt_id: str | None
    messages: list[dict[str, Any]]
    """The conversation."""
    context: dict[str, str] = field(default_factory=dict)
    """The prompt's context (region, user, surface, domain ...)."""
    constitution: dict[str, Any] | None = None
    """The :class:`~oversight.messages.ConstitutionApplied` record (None: not recorded)."""
    candidates: list[dict[str, Any]] = field(default_factory=list)
    """``{id, source, text, revises, round}`` per candidate, in order."""
    findings: list[dict[str, Any]] = field(default_factory=list)
    """``{kind, agent, candidate, principle, version, verdict, severity, confidence, method,
    rationale}`` per critique, safety assessment and audit."""
    judgment: dict[str, Any] | None = None
    """The judge's last ranking: ``{ranking, scores, confidence}``."""
    conflict: dict[str, Any] | None = None
    """``{principles, candidates}`` when candidates violated different principles."""
    resolution: dict[str, Any] | None = None
    """``{strategy, winner, path, conditional_rules, scores, rationale}``."""
    outcome: dict[str, Any] = field(default_factory=dict)
    """``{status: consensus|escalated|failed|unfinished, ...}``."""
    human: list[dict[str, Any]] = field(default_factory=list)
    """People's decisions: ``{reviewer, choice, edited_text, rationale, principle_tags}``."""
    target: dict[str, Any] | None = None
    """What became the training target: ``{by: consensus|human, candidate, text}``."""
    source: str = "journal"
    """``journal``, or ``case`` when only the review queue's copy of the case was available."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def priority_path(self) -> str:
        """The resolution's path as text (``harm > helpfulness``, or the cost comparison)."""
        if not self.resolution:
            return ""
        path = list(self.resolution.get("path") or ())
        if self.resolution.get("strategy") == "priority":
            return " > ".join(path)
        return " vs ".join(path)

    def format(self) -> str:
        """The chain as text, section by section."""
        out: list[str] = [
            f"episode {self.episode} of run {self.run}"
            + (f" (prompt {self.prompt_id})" if self.prompt_id else "")
        ]
        out.append("\n1. prompt")
        for turn in self.messages:
            calls = [
                f"[tool call {c['function']['name']} {c['function']['arguments']}]"
                for c in turn.get("tool_calls") or ()
            ]
            text = " ".join([turn.get("content", ""), *calls]).strip()
            out.append(f"   {turn.get('role', '?')}: {text}")
        if self.context:
            out.append(
                "   context: " + ", ".join(f"{k}={v}" for k, v in sorted(self.context.items()))
            )
        out.append("\n2. constitution")
        c = self.constitution
        if c is None:
            out.append("   not recorded (journal older than schema 2, or a case without one)")
        else:
            overlays = ", ".join(c.get("overlays") or ()) or "none"
            out.append(f"   {c.get('name')} v{c.get('version')}; overlays: {overlays}")
            if c.get("selected_by"):
                out.append(f"   selected by: {', '.join(c['selected_by'])} (the prompt's context)")
            rules = ", ".join(c.get("conditional_rules") or ()) or "none"
            out.append(f"   conditional rules applied: {rules}; digest {c.get('digest') or '-'}")
        out.append("\n3. candidates")
        for cand in self.candidates:
            origin = cand.get("source", "")
            if cand.get("revises"):
                origin += f", revises {cand['revises']} (round {cand.get('round')})"
            out.append(f"   {cand['id']} [{origin}]: {cand.get('text', '')}")
        out.append("\n4. findings")
        if not self.findings:
            out.append("   none recorded")
        satisfied: dict[str, list[str]] = {}
        for f in self.findings:  # satisfied critiques in one line per candidate
            if f.get("kind") == "critique" and f.get("verdict") == "satisfied":
                version = f" v{f['version']}" if f.get("version") else ""
                satisfied.setdefault(str(f.get("candidate")), []).append(
                    f"{f.get('principle')}{version}"
                )
        for cid, names in satisfied.items():
            out.append(f"   {cid} satisfies {', '.join(names)}")
        for f in self.findings:
            if f.get("kind") == "critique" and f.get("verdict") == "satisfied":
                continue
            version = f" v{f['version']}" if f.get("version") else ""
            numbers = []
            if f.get("severity") is not None:
                numbers.append(f"severity {f['severity']:.2f}")
            if f.get("confidence") is not None:
                numbers.append(f"confidence {f['confidence']:.2f}")
            out.append(
                f"   {f.get('candidate')} {f.get('principle')}{version}: {f.get('verdict')} "
                f"({', '.join(numbers)}) by {f.get('agent') or '?'} [{f.get('kind')}]"
            )
            if f.get("rationale"):
                out.append(f"      {f['rationale']}")
        out.append("\n5. judge")
        if self.judgment:
            scores = self.judgment.get("scores") or {}
            ranking = " > ".join(self.judgment.get("ranking") or ())
            detail = ", ".join(f"{k}={v:.2f}" for k, v in scores.items())
            out.append(
                f"   ranking {ranking} (scores {detail or '-'}; confidence "
                f"{float(self.judgment.get('confidence') or 0):.2f})"
            )
        else:
            out.append("   no ranking (one candidate, or no judge)")
        out.append("\n6. priority path")
        if self.conflict:
            per = "; ".join(
                f"{cid} violates {', '.join(v) or 'nothing'}"
                for cid, v in (self.conflict.get("candidates") or {}).items()
            )
            out.append(f"   conflict: {per}")
        if self.resolution:
            r = self.resolution
            out.append(
                f"   {r.get('strategy')}: {self.priority_path() or '-'} -> winner "
                f"{r.get('winner') or '-'}"
            )
            if r.get("rationale"):
                out.append(f"   {r['rationale']}")
        else:
            out.append("   no conflict: the chosen candidate violates no principle")
        out.append("\n7. decision")
        o = self.outcome
        if o.get("status") == "consensus":
            out.append(
                f"   consensus on {o.get('candidate')} by {o.get('strategy')} (text from "
                f"{o.get('source')}); rejected: {', '.join(o.get('rejected') or ()) or 'none'}"
            )
        elif o.get("status") == "escalated":
            out.append(
                f"   escalated to people as case {o.get('case_id')} "
                f"({', '.join(o.get('triggers') or ())}); agents proposed {o.get('proposed')}"
            )
        else:
            out.append(f"   {o.get('status', 'unfinished')}: {o.get('message', '')}".rstrip(": "))
        out.append("\n8. people")
        if not self.human:
            out.append("   no human decision")
        for h in self.human:
            what = f"chose {h['choice']}" if h.get("choice") else "wrote an edited answer"
            tags = ", ".join(h.get("principle_tags") or ())
            out.append(
                f"   {h.get('reviewer')}: {what}" + (f" citing {tags}" if tags else "")
                + (f": {h['rationale']}" if h.get("rationale") else "")
            )  # fmt: skip
        out.append("\n9. training target")
        t = self.target
        if t is None:
            out.append("   none yet (failed, unfinished, or waiting for people)")
        else:
            which = f"candidate {t['candidate']}" if t.get("candidate") else "the reviewer's text"
            out.append(f"   {which}, by {t['by']}: {t.get('text', '')}")
        return "\n".join(out)


def _finding(env: Envelope) -> dict[str, Any]:
    p: Any = env.payload
    base = {
        "kind": p.kind,
        "agent": env.sender,
        "candidate": p.candidate_id,
        "principle": p.principle_id,
        "version": getattr(p, "principle_version", None),
        "confidence": float(p.confidence),
        "rationale": p.rationale,
        "method": getattr(p, "method", None),
    }
    if isinstance(p, Critique):
        return {**base, "verdict": p.verdict, "severity": float(p.severity)}
    if isinstance(p, SafetyAssessment):
        return {
            **base,
            "verdict": f"risk {p.risk:.2f}, {p.action}",
            "severity": None,
            "signals": list(p.signals),
        }
    assert isinstance(p, Audit)
    return {
        **base,
        "verdict": f"{p.verdict} ({'agrees' if p.agrees else 'disagrees'} with {p.subject_agent})",
        "severity": None,
    }


def chain_from_journal(envs: Sequence[Envelope], decisions: Iterable[Any] = ()) -> PreferenceChain:
    """The chain of one episode's envelopes; ``decisions`` (the queue's
    :class:`~oversight.escalation.DecisionRecord`) add people's decisions not yet journaled."""
    if not envs:
        raise JournalError("no envelopes for this episode")
    first = envs[0]
    chain = PreferenceChain(run=first.run, episode=first.episode, prompt_id=None, messages=[])
    journaled: set[tuple[str, str | None, str | None]] = set()
    for env in envs:
        p = env.payload
        if isinstance(p, Prompt):
            chain.prompt_id = p.prompt_id
            chain.messages = [t.chat() for t in p.messages]
            chain.context = dict(p.context)
        elif isinstance(p, ConstitutionApplied):
            chain.constitution = p.model_dump(exclude={"kind"})
        elif isinstance(p, Draft):
            chain.candidates.append({"id": p.candidate_id, "source": "draft", "text": p.text})
        elif isinstance(p, Revision):
            chain.candidates.append(
                {
                    "id": p.candidate_id,
                    "source": p.source,
                    "text": p.text,
                    "revises": p.revises,
                    "round": p.round,
                }
            )
        elif isinstance(p, Critique | SafetyAssessment | Audit):
            chain.findings.append(_finding(env))
        elif isinstance(p, Judgment):
            chain.judgment = {
                "ranking": list(p.ranking),
                "scores": dict(p.scores),
                "confidence": p.confidence,
            }
        elif isinstance(p, Conflict):
            chain.conflict = {
                "principles": list(p.principles),
                "candidates": {k: list(v) for k, v in p.candidates.items()},
            }
        elif isinstance(p, Resolution):
            chain.resolution = p.model_dump(exclude={"kind"})
        elif isinstance(p, Consensus):
            chain.outcome = {
                "status": "consensus",
                "candidate": p.candidate_id,
                "strategy": p.strategy,
                "source": p.source,
                "rejected": list(p.rejected),
            }
            chain.target = {"by": "consensus", "candidate": p.candidate_id, "text": p.text}
        elif isinstance(p, Escalation):
            chain.outcome = {
                "status": "escalated",
                "case_id": p.case_id,
                "triggers": list(p.triggers),
                "proposed": p.proposed,
                "reason": p.reason,
            }
        elif isinstance(p, Adjudication):
            journaled.add((p.reviewer, p.choice, p.edited_text))
            chain.human.append(_human(p))
        elif isinstance(p, Failure):
            chain.outcome = {"status": "failed", "message": f"{p.error_type}: {p.message}"}
    if not chain.outcome:
        chain.outcome = {"status": "unfinished"}
    for d in decisions:
        if (d.reviewer, d.choice, d.edited_text) not in journaled:
            chain.human.append(_human(d))
    _human_target(chain)
    return chain


def _human(d: Any) -> dict[str, Any]:
    return {
        "reviewer": d.reviewer,
        "choice": d.choice,
        "edited_text": d.edited_text,
        "rationale": d.rationale,
        "principle_tags": list(d.principle_tags),
    }


def _human_target(chain: PreferenceChain, final: Any = None) -> None:
    """An escalated episode's target: the standing decision (``final``), else the last one."""
    if chain.outcome.get("status") != "escalated" or not chain.human:
        return
    pick = _human(final) if final is not None else chain.human[-1]
    texts = {c["id"]: c.get("text", "") for c in chain.candidates}
    if pick.get("choice"):
        chain.target = {
            "by": "human",
            "candidate": pick["choice"],
            "text": texts.get(pick["choice"], ""),
        }
    else:
        chain.target = {"by": "human", "candidate": None, "text": pick.get("edited_text") or ""}


def chain_from_case(case: Any, decisions: Iterable[Any] = ()) -> PreferenceChain:
    """The chain from the review queue's copy of a case (when its run's journal is not here):
    the details the runtime attached to the case, read leniently."""
    details = dict(case.details or {})
    chain = PreferenceChain(
        run=case.run,
        episode=case.episode,
        prompt_id=case.prompt_id,
        messages=[t.chat() for t in case.prompt],
        context={str(k): str(v) for k, v in (details.get("context") or {}).items()},
        candidates=[{"id": c.id, "source": c.source, "text": c.text} for c in case.candidates],
        source="case",
    )
    constitution = details.get("constitution")
    if isinstance(constitution, dict):
        chain.constitution = constitution
    for key in ("critiques", "safety", "audits"):
        for item in details.get(key) or ():
            if not isinstance(item, dict):
                continue
            inner = item.get("payload")
            p: dict[str, Any] = inner if isinstance(inner, dict) else item
            verdict = p.get("verdict")
            if verdict is None and "risk" in p:
                verdict = f"risk {float(p['risk']):.2f}, {p.get('action', '')}".rstrip(", ")
            chain.findings.append(
                {
                    "kind": p.get("kind", key.rstrip("s")),
                    "agent": item.get("sender"),
                    "candidate": p.get("candidate_id"),
                    "principle": p.get("principle_id", "harm" if key == "safety" else None),
                    "version": p.get("principle_version"),
                    "verdict": verdict,
                    "severity": p.get("severity"),
                    "confidence": p.get("confidence"),
                    "rationale": str(p.get("rationale", "")),
                    "method": p.get("method"),
                }
            )
    for key, attr in (("judgment", "judgment"), ("resolution", "resolution")):
        value = details.get(key)
        if isinstance(value, list) and value:
            value = value[-1]
        if isinstance(value, dict):
            setattr(chain, attr, value.get("payload") if "payload" in value else value)
    conflict = details.get("conflict")
    if isinstance(conflict, list) and conflict:
        conflict = conflict[-1]
    if isinstance(conflict, dict):
        chain.conflict = conflict.get("payload") if "payload" in conflict else conflict
    chain.outcome = {
        "status": "escalated",
        "case_id": case.id,
        "triggers": list(case.triggers),
        "proposed": case.proposed,
        "reason": case.reason,
    }
    chain.human = [_human(d) for d in decisions]
    _human_target(chain)
    return chain


# --------------------------------------------------------------------------- finding episodes


def episode_envelopes(
    run_dir: str | Path,
    *,
    episode: str | None = None,
    prompt_id: str | None = None,
    case_id: str | None = None,
    row: str | None = None,
) -> list[Envelope]:
    """The envelopes of the episode named by exactly one of: its id (or a unique prefix of at
    least 6 characters), its prompt id, its escalation's case id, or a training row
    (``sft.jsonl:3``: file and line number). :class:`InputError` when none or several match."""
    run_dir = Path(run_dir)
    given = [x for x in (episode, prompt_id, case_id, row) if x]
    if len(given) != 1:
        raise InputError(
            "name exactly one of --episode, --prompt, --case or --row (e.g. --row sft.jsonl:3)"
        )
    path = run_dir / "journal.jsonl"
    if not path.is_file():
        raise JournalError(f"{run_dir}: no journal.jsonl here; pass a run folder (runs/<name>)")
    by_episode = read_journal(path, strict=False).by_episode()
    if row:
        episode = _row_episode(run_dir, row)
    if episode:
        if len(episode) < 6:
            raise InputError(f"episode {episode!r}: give at least 6 characters of its id")
        found = [e for e in by_episode if e.startswith(episode)]
        what = f"episode {episode!r}"
    elif prompt_id:
        found = [
            e
            for e, envs in by_episode.items()
            if any(isinstance(x.payload, Prompt) and x.payload.prompt_id == prompt_id for x in envs)
        ]
        what = f"prompt {prompt_id!r}"
    else:
        found = [
            e
            for e, envs in by_episode.items()
            if any(
                isinstance(x.payload, Escalation | Adjudication) and x.payload.case_id == case_id
                for x in envs
            )
        ]
        what = f"case {case_id!r}"
    if not found:
        raise InputError(f"{path}: no episode matches {what}")
    if len(found) > 1:
        raise InputError(f"{path}: {len(found)} episodes match {what}; give more of the id")
    return by_episode[found[0]]


def _row_episode(run_dir: Path, row: str) -> str:
    name, sep, number = row.rpartition(":")
    if not sep or not number.isdigit() or Path(name).name != name or not name.endswith(".jsonl"):
        raise InputError(f"--row {row!r}: write FILE.jsonl:LINE, e.g. sft.jsonl:3 or dpo.jsonl:1")
    file = run_dir / name
    if not file.is_file():
        raise InputError(f"{file}: no such rows file; run `oversight export {run_dir}` first")
    with file.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if i == int(number):
                try:
                    provenance = json.loads(line).get("provenance") or {}
                except (json.JSONDecodeError, AttributeError):
                    raise InputError(f"{file}:{number}: not a JSON training row") from None
                episode = provenance.get("episode")
                if not episode:
                    raise InputError(f"{file}:{number}: the row's provenance names no episode")
                return str(episode)
    raise InputError(f"{file}: has no line {number}")


__all__ = [
    "PreferenceChain",
    "chain_from_case",
    "chain_from_journal",
    "episode_envelopes",
]
