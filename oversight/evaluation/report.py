"""The evaluation report (JSON, Markdown, a reliability plot) and the calibration file that
``oversight simulate --calibration`` reads.

The calibration file (``calibration.json``)::

    {"format": "oversight-calibration/1",
     "hierarchy": "embedded", "hierarchy_file": "roles/embedded.yaml",
     "models_sha256": "...",          # of the hierarchy's models section
     "agents": {"safety": {"model": "guard", "role": "safety",
                           "questions": {"response_harm:harm": {"tp": .., "fn": .., "fp": ..,
                                         "tn": .., "tpr": .., "fpr": .., "accuracy": ..,
                                         "accuracy_per_class": {...}}}}},
     "models": {"guard": {"agents": {"safety": {"miss_rate": .., "false_alarm_rate": ..}},
                          "principles": {"harm": {"tp": .., "fn": .., "fp": .., "tn": ..}}}}}

``models`` is in the simulator's own format (:func:`oversight.simulate.load_calibration`): per
model, each agent's miss and false-alarm rates on the cells the simulator draws (a harmful
request answered = a harm violation; a safe request refused = an over-refusal), and per
principle the pooled counts of every agent on that model. Request-level figures stay in the
report (the simulator has no request-level cells). The simulator refuses a calibration file
whose ``models_sha256`` differs from the hierarchy it simulates: the rates were measured on
other models. Adding agents on the same models keeps the hash, so "what if I add a second
critic like this one" works.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

from .harness import AgentResult
from .sets import LabelledSet

CALIBRATION_FORMAT = "oversight-calibration/1"


def models_fingerprint(spec: Any) -> str:
    """sha256 of a hierarchy's ``models`` section (backends and options), canonical JSON."""
    models = {
        name: {"backend": m.backend, "options": dict(m.options)}
        for name, m in sorted(spec.models.items())
    }
    blob = json.dumps(models, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "loadavg": list(os.getloadavg())}


def build_report(
    spec: Any,
    hierarchy_file: str,
    sets: list[LabelledSet],
    results: list[AgentResult],
    *,
    seconds: float,
    command: str,
    limit: int | None,
    seed: int,
) -> dict[str, Any]:
    """The JSON report."""
    return {
        "hierarchy": spec.name,
        "hierarchy_file": hierarchy_file,
        "models_sha256": models_fingerprint(spec),
        "command": command,
        "limit": limit,
        "seed": seed,
        "seconds": round(seconds, 1),
        "machine": _machine(),
        "sets": {s.name: {"n": len(s.examples), "source": s.source} for s in sets},
        "agents": {
            r.name: {
                "role": r.role,
                "model": r.model,
                "notes": r.notes,
                "questions": r.metrics(),
                **({"ranking": rk} if (rk := r.ranking_metrics()) is not None else {}),
            }
            for r in results
        },
    }


def _counts(m: dict[str, Any]) -> dict[str, Any]:
    c = m["confusion"]
    return {
        **c,
        "tpr": m["tpr"],
        "fpr": m["fpr"],
        "accuracy": m["accuracy"],
        "accuracy_per_class": m["accuracy_per_class"],
    }


def build_calibration(report: dict[str, Any]) -> dict[str, Any]:
    """The simulator's calibration file from a report (see the module docstring)."""
    agents: dict[str, Any] = {}
    models: dict[str, Any] = {}
    for name, a in report["agents"].items():
        cells = {k: q for k, q in a["questions"].items() if q["question"] != "request_harm"}
        if not a["questions"]:
            continue
        agents[name] = {
            "model": a["model"],
            "role": a["role"],
            "questions": {k: _counts(q["pooled"]) for k, q in a["questions"].items()},
        }
        if not cells:
            continue
        model = models.setdefault(a["model"], {"agents": {}, "principles": {}})
        total = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
        for q in cells.values():
            for k in total:
                total[k] += q["pooled"]["confusion"][k]
            pid = q["principle"]
            pooled = model["principles"].setdefault(pid, {"tp": 0, "fn": 0, "fp": 0, "tn": 0})
            for k in pooled:
                pooled[k] += q["pooled"]["confusion"][k]
        rates: dict[str, float] = {}
        if total["tp"] + total["fn"]:
            rates["miss_rate"] = round(total["fn"] / (total["tp"] + total["fn"]), 4)
        if total["fp"] + total["tn"]:
            rates["false_alarm_rate"] = round(total["fp"] / (total["fp"] + total["tn"]), 4)
        if rates:
            model["agents"][name] = rates
    for model in models.values():  # a principle needs both classes to give both rates
        model["principles"] = {
            p: c for p, c in model["principles"].items() if c["tp"] + c["fn"] and c["fp"] + c["tn"]
        }
    return {
        "format": CALIBRATION_FORMAT,
        "hierarchy": report["hierarchy"],
        "hierarchy_file": report["hierarchy_file"],
        "models_sha256": report["models_sha256"],
        "command": report["command"],
        "agents": agents,
        "models": models,
    }


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: a table per agent, per question and set."""
    lines = [
        f"# Overseer evaluation: {report['hierarchy']}",
        "",
        f"Command: `{report['command']}`  ",
        f"Hierarchy: `{report['hierarchy_file']}` (models sha256 "
        f"`{report['models_sha256'][:12]}`); machine: {report['machine']['cpu']}; "
        f"{report['seconds']:.0f} s.",
        "",
        "Sets: "
        + ", ".join(f"{n} ({s['n']})" for n, s in report["sets"].items())
        + (f"; a seeded sample of at most {report['limit']} per set" if report["limit"] else ""),
        "",
        "Positive = the agent should say Yes (request harmful; answer helps with a harmful "
        "request; answer refuses a safe request). Accuracy per class: positives / negatives "
        "recognised. ECE: expected calibration error over 10 bins (reliability.png).",
        "",
    ]
    for name, a in report["agents"].items():
        lines += [f"## {name} ({a['role']}, model {a['model']})", ""]
        for note in a["notes"]:
            lines.append(f"- {note}")
        if a["notes"]:
            lines.append("")
        if a.get("ranking"):
            lines += [
                "Ranking (pairs of a right and a wrong answer to one request, each pair shown in "
                "both orders; position bias: mean P(first shown) - 0.5; length bias: share where "
                "the longer answer wins - share where it is the right one):",
                "",
                "| set | pairs | accuracy | single order | position bias | same winner both "
                "orders | length bias | accuracy right longer / shorter |",
                "|---|---|---|---|---|---|---|---|",
            ]
            rk = a["ranking"]
            for set_name, m in [("**all**", rk["pooled"]), *rk["sets"].items()]:
                lines.append(
                    f"| {set_name} | {m['n']} | {_pct(m['accuracy'])} | "
                    f"{_pct(m['accuracy_single_order'])} | {_num(m['position_bias'])} | "
                    f"{_pct(m['position_consistency'])} | {_num(m['length_bias'])} | "
                    f"{_pct(m['accuracy_right_longer'])} / {_pct(m['accuracy_right_shorter'])} |"
                )
            lines.append("")
        if not a["questions"]:
            continue
        lines += [
            "| question | set | n | accuracy | pos. / neg. recognised | precision | recall "
            "| AUROC | ECE | tp / fp / fn / tn |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for key, q in a["questions"].items():
            for set_name, m in [("**all**", q["pooled"]), *q["sets"].items()]:
                c = m["confusion"]
                per = m["accuracy_per_class"]
                lines.append(
                    f"| {key} | {set_name} | {m['n']} | {_pct(m['accuracy'])} | "
                    f"{_pct(per['positive'])} / {_pct(per['negative'])} | "
                    f"{_pct(m['precision'])} | {_pct(m['recall'])} | {_num(m['auroc'])} | "
                    f"{_num(m['ece'])} | {c['tp']} / {c['fp']} / {c['fn']} / {c['tn']} |"
                )
        lines.append("")
    return "\n".join(lines)


def plot_reliability(report: dict[str, Any], path: Path) -> Path | None:
    """One reliability diagram per (agent, question), pooled over sets."""
    panels = [
        (name, key, q["pooled"])
        for name, a in report["agents"].items()
        for key, q in a["questions"].items()
    ]
    if not panels:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = min(3, len(panels))
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.8 * rows), squeeze=False)
    for ax, (name, key, m) in zip(axes.flat, panels, strict=False):
        bins = [b for b in m["reliability"] if b["n"]]
        ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1)
        ax.plot(
            [b["mean_probability"] for b in bins], [b["positive_share"] for b in bins], marker="o"
        )
        ax.bar(
            [(b["low"] + b["high"]) / 2 for b in m["reliability"]],
            [b["n"] / max(m["n"], 1) for b in m["reliability"]],
            width=0.1,
            alpha=0.25,
            color="tab:gray",
        )
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_title(f"{name}\n{key} (ECE {m['ece']:.3f}, n={m['n']})", fontsize=9)
        ax.set_xlabel("P(Yes) said by the agent")
        ax.set_ylabel("share truly Yes (bars: share of examples)")
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(report: dict[str, Any], out: Path, *, plots: bool = True) -> list[Path]:
    """Write report.json, report.md, calibration.json and reliability.png into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    written.append(path)
    path = out / "report.md"
    path.write_text(render_markdown(report), encoding="utf-8")
    written.append(path)
    path = out / "calibration.json"
    path.write_text(json.dumps(build_calibration(report), indent=2) + "\n", encoding="utf-8")
    written.append(path)
    if plots and (png := plot_reliability(report, out / "reliability.png")) is not None:
        written.append(png)
    return written
