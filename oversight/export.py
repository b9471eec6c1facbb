"""Training rows from a run's journal, plus the human decisions made since.

* ``sft.jsonl``: ``{"messages": [...conversation, {"role": "assistant", ...}], "provenance"}``,
  the conversational format TRL's ``SFTTrainer`` reads; the target is the consensus answer, or
  the human decision for an escalated case.
* ``dpo.jsonl``: ``{"prompt": [...], "chosen": [assistant turn], "rejected": [assistant turn],
  "provenance"}``, TRL's conversational preference format: the final answer against each
  candidate that lost (the original draft, a rejected revision).

* ``self_critique.jsonl`` (opt-in, ``self_critique=True``): critique and critique-then-revision
  rows (:mod:`oversight.self_critique`). They carry internal reasoning by design, so they go to
  this separate file only, never into the two files above.

Every row's ``provenance`` walks back through the journal: the episode, the prompt's message
id, every candidate and finding id, the resolution, the consensus or escalation, the human
adjudication, the principle versions, the constitution that decided (name, version, overlays,
the ``select`` entries that chose it, conditional rules, digest; None for journals older than
schema 2), the strategy. Only candidate texts (public messages)
become targets: internal reasoning is never copied into a row.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .journal import read_journal
from .messages import (
    Adjudication,
    Audit,
    Consensus,
    ConstitutionApplied,
    Critique,
    Draft,
    Envelope,
    Escalation,
    Prompt,
    Resolution,
    Revision,
    SafetyAssessment,
    envelope,
)
from .self_critique import DEFAULT_SATISFIED_RATE, SelfCritiqueCounts, self_critique_rows
from .self_critique import FILE_NAME as SELF_CRITIQUE_FILE


@dataclass
class ExportResult:
    """What :func:`export_run` wrote."""

    sft_rows: int = 0
    dpo_rows: int = 0
    human_rows: int = 0
    """SFT rows whose target is a human decision."""
    pending_cases: int = 0
    """Escalated episodes still waiting for people."""
    new_adjudications: int = 0
    """Human decisions journaled by this export."""
    bad_journal_lines: list[tuple[int, str]] = field(default_factory=list)
    self_critique: SelfCritiqueCounts | None = None
    """Rows written to ``self_critique.jsonl`` and skipped (None when not asked for)."""

    def as_dict(self) -> dict[str, Any]:
        extra = (
            {} if self.self_critique is None else {"self_critique": self.self_critique.as_dict()}
        )
        return {
            "sft_rows": self.sft_rows,
            "dpo_rows": self.dpo_rows,
            "human_rows": self.human_rows,
            "pending_cases": self.pending_cases,
            "new_adjudications": self.new_adjudications,
            "bad_journal_lines": len(self.bad_journal_lines),
            **extra,
        }


def _turn(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def _human_decisions(queue: Any, run: str) -> dict[str, Adjudication]:
    """Final decisions of decided cases of this run, by case id."""
    if queue is None:
        return {}
    out: dict[str, Adjudication] = {}
    offset = 0
    while True:
        cases = queue.list_cases(run=run, status="decided", limit=500, offset=offset)
        for case in cases:
            final = queue.final_decision(case)
            if final is not None:
                out[case.id] = final.to_adjudication()
        if len(cases) < 500:
            return out
        offset += len(cases)


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
    os.replace(tmp, path)


def export_run(
    run_dir: str | Path,
    *,
    queue: Any = None,
    self_critique: bool = False,
    satisfied_rate: float = DEFAULT_SATISFIED_RATE,
    principle_names: Mapping[tuple[str, str], str] | None = None,
) -> ExportResult:
    """Rebuild ``sft.jsonl`` and ``dpo.jsonl`` of a run from its journal and the queue.

    Human decisions found in the queue and not yet in the journal are appended to it as
    :class:`Adjudication` envelopes first, so the journal stays the complete record.

    With ``self_critique=True`` also write ``self_critique.jsonl`` (see
    :mod:`oversight.self_critique`; ``satisfied_rate`` and ``principle_names`` are passed on).
    """
    run_dir = Path(run_dir)
    journal_path = run_dir / "journal.jsonl"
    scan = read_journal(journal_path, strict=False)
    result = ExportResult(bad_journal_lines=scan.bad_lines)
    episodes = scan.by_episode()
    run_name = scan.envelopes[0].run if scan.envelopes else run_dir.name

    journaled = {e.payload.case_id: e for e in scan.envelopes if e.payload.kind == "adjudication"}
    escalations = {e.payload.case_id: e for e in scan.envelopes if e.payload.kind == "escalation"}
    fresh = [
        (case_id, adj)
        for case_id, adj in _human_decisions(queue, run_name).items()
        if case_id not in journaled and case_id in escalations
    ]
    if fresh:
        with journal_path.open("a", encoding="utf-8") as fh:
            for case_id, adj in fresh:
                esc = escalations[case_id]
                env = envelope(
                    adj,
                    run=esc.run,
                    episode=esc.episode,
                    sender=f"human:{adj.reviewer}",
                    topic="episode.adjudication",
                    parents=(esc.id,),
                )
                fh.write(env.model_dump_json() + "\n")
                journaled[case_id] = env
                episodes.setdefault(esc.episode, []).append(env)
        result.new_adjudications = len(fresh)

    sft: list[dict[str, Any]] = []
    dpo: list[dict[str, Any]] = []
    critique_rows: list[dict[str, Any]] = []
    counts = SelfCritiqueCounts()
    for envs in episodes.values():
        if self_critique:
            critique_rows += self_critique_rows(
                envs, counts, satisfied_rate=satisfied_rate, principle_names=principle_names
            )
        rows = _episode_rows(envs)
        if rows is None:
            continue
        kind, sft_row, dpo_rows = rows
        if kind == "pending":
            result.pending_cases += 1
            continue
        sft.append(sft_row)
        dpo.extend(dpo_rows)
        if kind == "human":
            result.human_rows += 1
    sft.sort(key=lambda r: r["provenance"]["prompt_id"])
    dpo.sort(key=lambda r: (r["provenance"]["prompt_id"], r["provenance"]["rejected_candidate"]))
    _write_jsonl(run_dir / "sft.jsonl", sft)
    _write_jsonl(run_dir / "dpo.jsonl", dpo)
    result.sft_rows, result.dpo_rows = len(sft), len(dpo)
    if self_critique:
        critique_rows.sort(
            key=lambda r: (
                r["provenance"]["prompt_id"],
                r["provenance"]["row_kind"],
                r["provenance"]["candidate_id"],
                r["provenance"].get("principle_id", ""),
                r["provenance"].get("critic", ""),
                r["messages"][-1]["content"],
            )
        )
        _write_jsonl(run_dir / SELF_CRITIQUE_FILE, critique_rows)
        result.self_critique = counts
    return result


def _episode_rows(
    envs: list[Envelope],
) -> tuple[str, dict[str, Any], list[dict[str, Any]]] | None:
    prompt_env = next((e for e in envs if isinstance(e.payload, Prompt)), None)
    consensus_env = next((e for e in reversed(envs) if isinstance(e.payload, Consensus)), None)
    escalation_env = next((e for e in reversed(envs) if isinstance(e.payload, Escalation)), None)
    if prompt_env is None or not isinstance(prompt_env.payload, Prompt):
        return None
    if consensus_env is None and escalation_env is None:
        return None  # failed or unfinished episodes produce no rows
    prompt = prompt_env.payload
    messages = [t.chat() for t in prompt.messages]
    candidates: dict[str, tuple[str, str, str]] = {}
    findings: list[Envelope] = []
    versions: dict[str, str] = {}
    resolution_env: Envelope | None = None
    adjudication_env: Envelope | None = None
    applied: ConstitutionApplied | None = None
    for env in envs:
        p = env.payload
        if isinstance(p, ConstitutionApplied):
            applied = p
        elif isinstance(p, Draft):
            candidates[p.candidate_id] = (p.text, env.id, "draft")
        elif isinstance(p, Revision):
            candidates[p.candidate_id] = (p.text, env.id, p.source)
        elif isinstance(p, Critique | SafetyAssessment):
            findings.append(env)
            versions[p.principle_id] = p.principle_version
        elif isinstance(p, Audit):
            findings.append(env)
        elif isinstance(p, Resolution):
            resolution_env = env
        elif isinstance(p, Adjudication):
            adjudication_env = env
    strategy = "none"
    if resolution_env is not None and isinstance(resolution_env.payload, Resolution):
        strategy = resolution_env.payload.strategy
    message_ids: dict[str, Any] = {
        "prompt": prompt_env.id,
        "candidates": {c: v[1] for c, v in candidates.items()},
        "findings": [e.id for e in findings],
        "resolution": resolution_env.id if resolution_env else None,
    }
    provenance: dict[str, Any] = {
        "run": prompt_env.run,
        "episode": prompt_env.episode,
        "prompt_id": prompt.prompt_id,
        "principle_versions": dict(sorted(versions.items())),
        "constitution": (
            {
                "name": applied.name,
                "version": applied.version,
                "overlays": list(applied.overlays),
                "selected_by": list(applied.selected_by),
                "conditional_rules": list(applied.conditional_rules),
                "digest": applied.digest,
            }
            if applied is not None
            else None
        ),
        "strategy": strategy,
        "message_ids": message_ids,
    }
    if consensus_env is not None and isinstance(consensus_env.payload, Consensus):
        c = consensus_env.payload
        final, chosen_id = c.text, c.candidate_id
        losers = [cid for cid in c.rejected if cid in candidates]
        provenance.update(
            source="consensus",
            target_source=c.source,
            candidate_id=chosen_id,
            case_id=None,
            reviewer=None,
        )
        message_ids["consensus"] = consensus_env.id
        kind = "consensus"
    else:
        assert escalation_env is not None
        message_ids["escalation"] = escalation_env.id
        if adjudication_env is None or not isinstance(adjudication_env.payload, Adjudication):
            return ("pending", {}, [])
        a = adjudication_env.payload
        if a.edited_text:
            final, chosen_id, target = a.edited_text, None, "human"
            losers = list(candidates)
        elif a.choice in candidates:
            final, chosen_id, target = candidates[a.choice][0], a.choice, candidates[a.choice][2]
            losers = [cid for cid in candidates if cid != a.choice]
        else:
            return ("pending", {}, [])
        provenance.update(
            source="human",
            target_source=target,
            candidate_id=chosen_id,
            case_id=a.case_id,
            reviewer=a.reviewer,
        )
        message_ids["adjudication"] = adjudication_env.id
        kind = "human"
    sft_row = {"messages": [*messages, *_turn(final)], "provenance": provenance}
    dpo_rows: list[dict[str, Any]] = []
    for loser in losers:
        text = candidates[loser][0]
        if text.strip() == final.strip():
            continue
        dpo_rows.append(
            {
                "prompt": messages,
                "chosen": _turn(final),
                "rejected": _turn(text),
                "provenance": {**provenance, "rejected_candidate": loser},
            }
        )
    return kind, sft_row, dpo_rows
