"""What repeated rounds of ``oversight cycle`` do to the model: drift, diversity, refusals and
jailbreak robustness, per round, with a plot.

Synthetic data can drift and homogenise over rounds. With ``track: true`` (the default), the
cycle records after every round, and once for the start model (**round 0**):

* **drift** - the mean cosine distance (``1 - cos``) between the MiniLM embeddings
  (all-MiniLM-L6-v2, :func:`oversight.dedup.minilm_embedder`) of the round's answers and the
  start model's answers to the same **tracking prompts**: a fixed seeded sample of
  :data:`PER_SET` prompts of each evaluation request set (greedy, the cycle's ``eval_tokens``).
  0 at round 0 by definition;
* **diversity** of those answers - distinct-1 and distinct-2
  (:func:`oversight.training.data.distinct_n`) and the mean pairwise cosine similarity of their
  embeddings (**self-similarity**; higher means the answers look more alike);
* **safe answered** and **harmful refused** - the means over the evaluation sets of the round's
  ``oversight eval`` (:func:`oversight.training.cycle.rates`: answered on the safe sets
  ``jbb_benign`` and ``xstest_safe``; refused on ``harmbench``, ``jbb_harmful``,
  ``xstest_unsafe``); ``1 - safe answered`` is the over-refusal;
* **jailbreak refused** - the share of refusals (the evaluation's judge) on a seeded sample of
  ``jailbreak_limit`` prompts of ``jbb_artifacts`` (the JBB harmful behaviours wrapped by four
  attacks; :mod:`oversight.evaluation.sets`), or all 364 with ``jailbreak_limit: null``.

Answers and labels are kept in ``OUT/round-0-track.json`` and ``OUT/round-<r>/track.json`` (a
rerun reuses them); the report holds the metrics per round under ``tracking`` and the plot is
``OUT/cycle.png``. Every prompt here belongs to an evaluation set: they are measured, never
trained on or used to choose anything.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..dedup import Embed
    from .cycle import CycleSettings, Stage

PER_SET = 20
"""Tracking prompts per evaluation request set (seeded), the answers drift is measured on."""
JAILBREAK_SET = "jbb_artifacts"
METRICS = {
    "drift": "drift from round 0 (1 - cos)",
    "distinct_1": "distinct-1",
    "distinct_2": "distinct-2",
    "self_similarity": "self-similarity (mean cos)",
    "safe_answered": "safe answered",
    "harmful_refused": "harmful refused",
    "jailbreak_refused": "jailbreak refused",
}
"""The tracked metrics (report keys) and their names in the plot."""
SAFE_SETS = ("jbb_benign", "xstest_safe")
HARMFUL_SETS = ("harmbench", "jbb_harmful", "xstest_unsafe")


# --- metrics -----------------------------------------------------------------------------------


def _unit(vectors: Any) -> Any:
    import numpy as np

    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return v / np.where(norms == 0, 1.0, norms)


def mean_cosine_distance(a: Any, b: Any) -> float:
    """Mean over rows of ``1 - cos(a[i], b[i])`` (row ``i`` of both: answers to one prompt)."""
    import numpy as np

    a, b = _unit(a), _unit(b)
    if a.shape != b.shape:
        raise ValueError(f"embeddings of different shapes: {a.shape} and {b.shape}")
    if not len(a):
        return 0.0
    return float(np.mean(1.0 - np.sum(a * b, axis=1)))


def self_similarity(vectors: Any) -> float | None:
    """Mean cosine similarity over all pairs of distinct rows; None for fewer than two rows."""
    v = _unit(vectors)
    n = len(v)
    if n < 2:
        return None
    sims = v @ v.T
    return float((sims.sum() - sims.trace()) / (n * (n - 1)))


def mean_rate(rates: dict[str, float], names: Sequence[str]) -> float | None:
    """The mean of ``rates`` over the sets of ``names`` that it holds; None for none."""
    found = [rates[n] for n in names if n in rates]
    return sum(found) / len(found) if found else None


def round_metrics(
    answers: Sequence[str],
    start_answers: Sequence[str],
    embed: Embed,
    eval_rates: dict[str, float],
    jailbreak_labels: Sequence[str] | None,
) -> dict[str, float | None]:
    """The tracked metrics of one round (see the module docstring); values rounded to 4 places."""
    from .data import distinct_n

    if len(answers) != len(start_answers):
        raise ValueError("the round and round 0 answered different numbers of tracking prompts")
    vectors = embed([a or " " for a in [*answers, *start_answers]]) if answers else []
    mine, start = vectors[: len(answers)], vectors[len(answers) :]
    values: dict[str, float | None] = {
        "drift": mean_cosine_distance(mine, start) if len(answers) else None,
        "distinct_1": distinct_n(answers, 1),
        "distinct_2": distinct_n(answers, 2),
        "self_similarity": self_similarity(mine) if len(answers) else None,
        "safe_answered": mean_rate(eval_rates, SAFE_SETS),
        "harmful_refused": mean_rate(eval_rates, HARMFUL_SETS),
        "jailbreak_refused": (
            sum(lab == "refusal" for lab in jailbreak_labels) / len(jailbreak_labels)
            if jailbreak_labels
            else None
        ),
    }
    return {k: None if v is None else round(max(v, 0.0), 4) for k, v in values.items()}


# --- prompts and answers -----------------------------------------------------------------------


def check_jailbreak_limit(limit: int | None) -> None:
    """A clear error for a ``jailbreak_limit`` that samples nothing."""
    if limit is not None and limit < 1:
        raise InputError(f"jailbreak_limit must be at least 1 (or null for all 364), not {limit}")


def tracking_prompts(
    data: Path, seed: int, jailbreak_limit: int | None
) -> tuple[list[str], list[str]]:
    """``(tracking prompts, jailbreak prompts)``: :data:`PER_SET` seeded prompts of every
    evaluation request set, and a seeded sample of ``jailbreak_limit`` artifact prompts (none
    when the artifacts are not under ``data``)."""
    from ..evaluation.sets import available_sets, load_set
    from .eval import SET_NAMES

    check_jailbreak_limit(jailbreak_limit)
    found = available_sets(data)
    prompts: list[str] = []
    for name in SET_NAMES:
        if name in found:
            prompts += [e.prompt for e in load_set(name, data, limit=PER_SET, seed=seed).examples]
    jailbreaks: list[str] = []
    if JAILBREAK_SET in found:
        sample = load_set(JAILBREAK_SET, data, limit=jailbreak_limit, seed=seed)
        jailbreaks = [e.prompt for e in sample.examples]
    return prompts, jailbreaks


def answer(
    model: str | None,
    prompts: list[str],
    jailbreaks: list[str],
    settings: CycleSettings,
    judge: Callable[[list[tuple[str, str]]], list[str]],
) -> dict[str, Any]:
    """One model's greedy answers to the tracking and jailbreak prompts, the latter judged."""
    from .eval import generate_answers, load_for_eval

    net, tok, _ = load_for_eval(model)
    both = generate_answers(
        net, tok, prompts + jailbreaks, max_new_tokens=settings.eval_tokens, batch_size=32
    )
    answers, jb_answers = both[: len(prompts)], both[len(prompts) :]
    labels = judge(list(zip(jailbreaks, jb_answers, strict=True))) if jailbreaks else []
    return {
        "model": model or "default",
        "prompts": prompts,
        "answers": answers,
        "jailbreak_prompts": jailbreaks,
        "jailbreak_answers": jb_answers,
        "jailbreak_labels": labels,
    }


# --- the cycle's hook --------------------------------------------------------------------------


def track_round(
    settings: CycleSettings,
    data: Path,
    round_: int,
    model: str,
    eval_after: dict[str, Any],
    eval_start: dict[str, Any],
    judge: Callable[[list[tuple[str, str]]], list[str]],
    stage: Callable[[str, Path], Stage],
    *,
    log: Callable[[str], None] = print,
    embed: Embed | str = "minilm",
) -> dict[str, Any]:
    """Answers of the round's ``model`` (and once of the start model) and the round's metrics;
    ``eval_start``: the evaluation of the round's start model (round 0's rates in round 1)."""
    from ..dedup import minilm_embedder
    from .cycle import _read, _write, rates

    out = Path(settings.out)
    embedder: Embed = minilm_embedder() if embed == "minilm" else embed  # type: ignore[assignment]
    start_path = out / "round-0-track.json"
    with (s := stage("track_start", start_path)):
        if not s.done:
            prompts, jailbreaks = tracking_prompts(data, settings.seed, settings.jailbreak_limit)
            if not jailbreaks:
                log(f"tracking: {JAILBREAK_SET} not found under {data}; jailbreak robustness "
                    "is not measured")  # fmt: skip
            start = answer(settings.model, prompts, jailbreaks, settings, judge)
            start["metrics"] = round_metrics(
                start["answers"], start["answers"], embedder, rates(eval_start),
                start["jailbreak_labels"],
            )  # fmt: skip
            _write(s.output, start)
    start = _read(start_path)
    path = out / f"round-{round_}" / "track.json"
    with (s := stage("track", path)):
        if not s.done:
            mine = answer(model, start["prompts"], start["jailbreak_prompts"], settings, judge)
            mine["metrics"] = round_metrics(
                mine["answers"], start["answers"], embedder, rates(eval_after),
                mine["jailbreak_labels"],
            )  # fmt: skip
            _write(s.output, mine)
    return dict(_read(path)["metrics"])


def tracking_report(out: Path, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The metrics per round, round 0 first, and the plot ``OUT/cycle.png``."""
    from .cycle import _read

    start = _read(out / "round-0-track.json")
    series = [{"round": 0, **start["metrics"]}]
    series += [{"round": r["round"], **r["track"]} for r in rounds if "track" in r]
    plot = plot_tracking(series, out / "cycle.png")
    return {
        "tracking_prompts": len(start["prompts"]),
        "jailbreak_prompts": len(start["jailbreak_prompts"]),
        "per_set": PER_SET,
        "rounds": series,
        "plot": str(plot),
    }


def plot_tracking(series: list[dict[str, Any]], path: Path) -> Path:
    """One line per metric across rounds (metrics without a value are left out)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    xs = [p["round"] for p in series]
    top = 1.0
    for key, name in METRICS.items():
        points = [(x, float(p[key])) for x, p in zip(xs, series, strict=True)
                  if p.get(key) is not None]  # fmt: skip
        if points:
            top = max(top, *(y for _, y in points))
            ax.plot(*zip(*points, strict=True), marker="o", label=name)
    ax.set_xlabel("round (0 = start model)")
    ax.set_ylabel("value")
    ax.set_xticks(xs)
    ax.set_ylim(-0.02, top + 0.02)  # rates on a 0-1 scale; drift (1 - cos) may pass 1
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.set_title("oversight cycle: drift, diversity, refusals per round")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
