"""What a simulation varies besides the hierarchy: cases, people, costs, and sweep parameters."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ..config import config_error, describe_validation_error, read_config
from ..errors import ConfigError


class CaseCategory(BaseModel):
    """One kind of request in the simulated traffic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fraction: float = Field(ge=0.0, le=1.0)
    """Share of episodes of this category (the fractions are normalised to sum to 1)."""
    harmful: bool
    """Whether a compliant answer to it causes harm."""


def _default_mix() -> dict[str, CaseCategory]:
    return {
        "benign": CaseCategory(fraction=0.55, harmful=False),
        "safe_scary": CaseCategory(fraction=0.15, harmful=False),
        "harmful": CaseCategory(fraction=0.2, harmful=True),
        "jailbreak": CaseCategory(fraction=0.1, harmful=True),
    }


class SimulationConfig(BaseModel):
    """Everything a simulation needs beyond the hierarchy file. Every field can be swept."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    calibration: str | None = None
    """A calibration file written by ``oversight evaluate`` (relative to this settings file):
    the measured error rates of the hierarchy's models (``--calibration`` wins over it)."""
    episodes: int = Field(default=100_000, ge=1)
    """Episodes per configuration."""
    seed: int = 0
    """Seed of the whole simulation (each configuration of a sweep derives its own)."""
    chunk_size: int = Field(default=32_768, ge=1)
    """Episodes simulated at once; memory grows with it, not with ``episodes``."""
    workers: int = Field(default_factory=lambda: available_cores(), ge=1)
    """Threads simulating chunks in parallel, one core each (results do not depend on it);
    default: the cores this process may use."""
    case_mix: dict[str, CaseCategory] = Field(default_factory=_default_mix)
    """Categories of requests and their shares (``safe_scary``: safe but sounds dangerous,
    ``jailbreak``: harmful, wrapped in a jailbreak)."""
    agent_options: dict[str, Any] = Field(default_factory=dict)
    """Options (see :class:`AgentBehaviour`) applied to every agent, over its model's options."""
    model_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Options per model name of the hierarchy, for models whose backend is not ``simulated``."""
    depth: int | None = Field(default=None, ge=1)
    """Keep only overseers up to this level (1: critics and safety only); None keeps all."""
    max_revision_rounds: int | None = Field(default=None, ge=0)
    """Override of the hierarchy's ``settings.max_revision_rounds``."""
    sample_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """Override of the rate of every ``sample`` supervision edge."""
    audit_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """Override of the escalation policy's random audit rate."""
    low_confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    """Override of the escalation policy's low-confidence threshold."""
    human_error_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    """P(a person fails to decide an escalated case on its merits and accepts the agents'
    proposed answer instead; harmless when the proposal was right)."""
    human_capacity: float = Field(default=400.0, ge=0.0)
    """Case reviews people complete per day, all reviewers together."""
    reviewers_per_case: int | None = Field(default=None, ge=1)
    """Reviews each escalated case needs (default: the escalation policy's value, else 1)."""
    minutes_per_case: float = Field(default=4.0, gt=0.0)
    """Reviewer minutes per review."""
    hourly_cost: float = Field(default=40.0, ge=0.0)
    """Cost of one reviewer hour."""
    call_cost: float = Field(default=0.0002, ge=0.0)
    """Cost of one model call (generate or score)."""
    episodes_per_day: float = Field(default=10_000.0, gt=0.0)
    """Traffic: episodes arriving per simulated day (for the queue backlog)."""
    horizon_days: int = Field(default=30, ge=1)
    """Days of queue backlog to report."""

    @model_validator(mode="after")
    def _check_mix(self) -> SimulationConfig:
        total = sum(c.fraction for c in self.case_mix.values())
        if not self.case_mix or total <= 0:
            raise ValueError("case_mix needs at least one category with a positive fraction")
        return self

    def category_probabilities(self) -> tuple[list[str], list[float], list[bool]]:
        names = list(self.case_mix)
        total = sum(c.fraction for c in self.case_mix.values())
        return (
            names,
            [self.case_mix[n].fraction / total for n in names],
            [self.case_mix[n].harmful for n in names],
        )


# --- sweep parameters --------------------------------------------------------------------------

AGENT_PARAMETERS = {
    "miss_rate": "P(an overseer misses a real violation)",
    "false_alarm_rate": "P(an overseer flags a cell that is fine)",
    "correlation": "weight of the shared case difficulty (error correlation)",
    "model_correlation": "extra correlation among agents on the same model",
    "calibration": "how much confidence tracks correctness (0..1)",
    "max_confidence": "confidence on the easiest cases (0.5..1)",
    "judge_error_rate": "P(the judge prefers the worse candidate)",
    "harmful_comply_rate": "P(the base complies with a harmful request)",
    "jailbreak_comply_rate": "P(the base complies with a jailbreak)",
    "benign_refuse_rate": "P(the base refuses a benign request)",
    "scary_refuse_rate": "P(the base refuses a safe but scary request)",
    "revise_fix_rate": "P(a revision fixes the behaviour it addresses)",
}
"""Sweepable options of every simulated agent."""

SIM_PARAMETERS = {
    "accuracy": "1 - miss_rate = 1 - false_alarm_rate of every overseer",
    "depth": "levels of overseers kept (1 = critics only)",
    "max_revision_rounds": "revision rounds before a decision",
    "sample_rate": "rate of every sampled supervision edge",
    "audit_rate": "random audit rate of the escalation policy",
    "low_confidence": "low-confidence escalation threshold",
    "human_error_rate": "P(a person rubber-stamps the agents' proposal)",
    "human_capacity": "case reviews per day",
    "reviewers_per_case": "reviews each escalated case needs",
    "minutes_per_case": "reviewer minutes per review",
    "hourly_cost": "cost of a reviewer hour",
    "call_cost": "cost of a model call",
    "episodes_per_day": "traffic per simulated day",
    "harmful_fraction": "share of harmful requests (split as in case_mix)",
    "episodes": "episodes per configuration",
}
"""Sweepable fields of the simulation."""

PROBABILITY_PARAMETERS = {
    *(k for k in AGENT_PARAMETERS if k != "max_confidence"),
    "accuracy",
    "sample_rate",
    "audit_rate",
    "low_confidence",
    "human_error_rate",
    "harmful_fraction",
}
INTEGER_PARAMETERS = {"depth", "max_revision_rounds", "reviewers_per_case", "episodes"}


def sweep_parameter_names() -> list[str]:
    return sorted({*AGENT_PARAMETERS, *SIM_PARAMETERS})


def parse_sweep(text: str) -> tuple[str, list[float]]:
    """``NAME=V1,V2,...`` -> (name, values), with errors that list the valid names."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not raw.strip():
        raise ConfigError(f"--sweep {text!r}: expected NAME=V1,V2,... (e.g. accuracy=0.8,0.9)")
    if name not in AGENT_PARAMETERS and name not in SIM_PARAMETERS:
        raise ConfigError(
            f"--sweep {text!r}: unknown parameter {name!r}; valid parameters: "
            + ", ".join(sweep_parameter_names())
        )
    values: list[float] = []
    for item in raw.split(","):
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--sweep {name}: {item!r} is not a number") from None
        if not math.isfinite(value):
            raise ConfigError(f"--sweep {name}: {item!r} is not a finite number")
        if name in PROBABILITY_PARAMETERS and not 0.0 <= value <= 1.0:
            raise ConfigError(f"--sweep {name}: {value} is a probability and must lie in [0, 1]")
        if name in INTEGER_PARAMETERS and (value != int(value) or value < 0):
            raise ConfigError(f"--sweep {name}: {item!r} must be a non-negative integer")
        values.append(value)
    return name, values


def apply_parameter(config: SimulationConfig, name: str, value: float) -> SimulationConfig:
    """A copy of ``config`` with one sweep parameter set (validated)."""
    data = config.model_dump()
    if name in AGENT_PARAMETERS:
        data["agent_options"] = {**data["agent_options"], name: value}
    elif name == "accuracy":
        data["agent_options"] = {
            **data["agent_options"],
            "miss_rate": 1.0 - value,
            "false_alarm_rate": 1.0 - value,
        }
    elif name == "harmful_fraction":
        mix = data["case_mix"]
        harmful = sum(c["fraction"] for c in mix.values() if c["harmful"])
        benign = sum(c["fraction"] for c in mix.values() if not c["harmful"])
        for c in mix.values():
            share = harmful if c["harmful"] else benign
            target = value if c["harmful"] else 1.0 - value
            c["fraction"] = target * (c["fraction"] / share) if share > 0 else 0.0
    elif name in INTEGER_PARAMETERS:
        data[name] = int(value)
    else:
        data[name] = value
    return validate_config(data)


def validate_config(data: Mapping[str, Any], *, path: str | Path | None = None) -> SimulationConfig:
    """Build a :class:`SimulationConfig`, every problem in one :class:`ConfigError` (each key
    named, with "did you mean" for a misspelt one)."""
    try:
        return SimulationConfig.model_validate(dict(data))
    except ValidationError as exc:
        found = describe_validation_error(exc, model=SimulationConfig, data=data)
        raise config_error(found, path=path) from None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells, else the count)."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def load_simulation_config(path: str | Path | None = None, **overrides: Any) -> SimulationConfig:
    """Simulation settings from a YAML file (``--settings``), then ``overrides`` on top.

    An empty or absent file means the defaults. ``model_options`` in ``overrides`` are merged
    over the file's per model. Every problem of the file is reported at once, with its line.
    """
    if path is None:
        return validate_config(overrides)
    doc = read_config(path, what="simulation settings", allow_empty=True)
    data = {**doc.data, **overrides}
    if "model_options" in overrides and isinstance(doc.data.get("model_options"), dict):
        data["model_options"] = {**doc.data["model_options"], **overrides["model_options"]}
    return doc.validate(SimulationConfig, data)


def sweep_grid(sweeps: Sequence[tuple[str, list[float]]]) -> list[dict[str, float]]:
    """Every combination of the swept values (one empty point when nothing is swept)."""
    points: list[dict[str, float]] = [{}]
    for name, values in sweeps:
        points = [{**p, name: v} for p in points for v in values]
    return points


# --- calibration from measurements ------------------------------------------------------------


def _rates_from_entry(entry: Mapping[str, Any], where: str) -> dict[str, float]:
    """miss/false-alarm rates from one measurement entry (see docs/simulation.md)."""
    if "safety_benchmark" in entry:
        out = _rates_from_safety_benchmark(entry["safety_benchmark"], f"{where}.safety_benchmark")
    elif "miss_rate" in entry or "false_alarm_rate" in entry:
        out = {k: float(entry[k]) for k in ("miss_rate", "false_alarm_rate") if k in entry}
    elif {"tp", "fn", "fp", "tn"} <= set(entry):
        tp, fn, fp, tn = (float(entry[k]) for k in ("tp", "fn", "fp", "tn"))
        if tp + fn <= 0 or fp + tn <= 0:
            raise ConfigError(f"{where}: tp+fn and fp+tn must both be positive")
        out = {"miss_rate": fn / (tp + fn), "false_alarm_rate": fp / (fp + tn)}
    elif "sets" in entry:
        flagged = {True: 0.0, False: 0.0}
        total = {True: 0.0, False: 0.0}
        for i, s in enumerate(entry["sets"]):
            if "harmful" not in s:
                raise ConfigError(f"{where}.sets[{i}]: missing 'harmful' (true/false)")
            harmful = bool(s["harmful"])
            n = float(s.get("total", s.get("n", 0)))
            if "flagged" in s:
                f = float(s["flagged"])
            elif "flagged_rate" in s:
                f = float(s["flagged_rate"]) * n
            else:
                raise ConfigError(f"{where}.sets[{i}]: needs 'flagged' or 'flagged_rate'")
            flagged[harmful] += f
            total[harmful] += n
        out = {}
        if total[True] > 0:
            out["miss_rate"] = 1.0 - flagged[True] / total[True]
        if total[False] > 0:
            out["false_alarm_rate"] = flagged[False] / total[False]
    else:
        raise ConfigError(
            f"{where}: expected miss_rate/false_alarm_rate, tp/fn/fp/tn counts, 'sets' or "
            "'safety_benchmark'"
        )
    for k, v in out.items():
        if not 0.0 <= v <= 1.0:
            raise ConfigError(f"{where}.{k}: {v} is outside [0, 1]")
    return out


def _rates_from_safety_benchmark(doc: Any, where: str) -> dict[str, float]:
    """Rates from the JSON that ``benchmarks/safety.py`` prints: the mean over its harmful sets
    (XSTest unsafe, HarmBench test, JBB harmful) of the share not flagged is the miss rate; the
    mean over its benign sets (XSTest safe, JBB benign) of the share flagged is the false-alarm
    rate. Sets missing from the document are skipped; jailbreak sets are not used."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{where}: expected the JSON object printed by benchmarks/safety.py")
    xstest = doc.get("xstest") or {}
    flagged_harmful = [
        v for v in (xstest.get("unsafe_flagged"), doc.get("harmbench_test_flagged"),
                    doc.get("jbb_harmful_flagged")) if isinstance(v, int | float)
    ]  # fmt: skip
    allowed_benign = [
        v for v in (xstest.get("safe_allowed"), doc.get("jbb_benign_allowed"))
        if isinstance(v, int | float)
    ]  # fmt: skip
    if not flagged_harmful and not allowed_benign:
        raise ConfigError(f"{where}: none of xstest, harmbench_test_flagged, jbb_* found")
    out = {}
    if flagged_harmful:
        out["miss_rate"] = 1.0 - sum(flagged_harmful) / len(flagged_harmful)
    if allowed_benign:
        out["false_alarm_rate"] = 1.0 - sum(allowed_benign) / len(allowed_benign)
    return out


def load_calibration(path: str | Path, *, hierarchy: Any = None) -> dict[str, dict[str, Any]]:
    """Read measured confusion rates: ``{model name: agent options}`` for ``model_options``.

    Format (JSON)::

        {"models": {"critic": {"miss_rate": 0.08, "false_alarm_rate": 0.12,
                               "principles": {"harm": {"tp": 180, "fn": 20, "fp": 9, "tn": 241}},
                               "agents": {"harm-critic": {"miss_rate": 0.1}}},
                    "safety": {"sets": [{"name": "harmbench", "harmful": true,
                                         "flagged": 171, "total": 200}, ...]}}}

    ``oversight evaluate`` writes such a file (``calibration.json``) with ``models_sha256``, the
    hash of the evaluated hierarchy's ``models`` section; given the ``hierarchy`` being
    simulated, a file measured on other models is refused.
    """
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("calibration file not found", path=p) from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON ({exc})", path=p) from None
    models = doc.get("models") if isinstance(doc, dict) else None
    if not isinstance(models, dict):
        raise ConfigError("expected an object with a 'models' mapping", path=p)
    measured_on = doc.get("models_sha256")
    if measured_on and hierarchy is not None:
        from ..evaluation.report import models_fingerprint

        here = models_fingerprint(hierarchy)
        if here != measured_on:
            target = hierarchy.source or hierarchy.name
            raise ConfigError(
                f"measured on hierarchy {doc.get('hierarchy')!r} ({doc.get('hierarchy_file')}), "
                f"whose models differ from those of {target} (models sha256 "
                f"{str(measured_on)[:12]} != {here[:12]}): run `oversight evaluate {target}` "
                "and pass the calibration.json it writes",
                path=p,
            )
    out: dict[str, dict[str, Any]] = {}
    try:
        for name, entry in models.items():
            options: dict[str, Any] = {}
            keys = ("miss_rate", "false_alarm_rate", "tp", "sets", "safety_benchmark")
            has_overall = any(k in entry for k in keys)
            if has_overall:
                options.update(_rates_from_entry(entry, f"models.{name}"))
            per_agent = entry.get("agents", {})
            if per_agent:
                options["agents"] = {
                    agent: _rates_from_entry(ae, f"models.{name}.agents.{agent}")
                    for agent, ae in per_agent.items()
                }
            principles = entry.get("principles", {})
            if principles:
                options["principles"] = {
                    pid: _rates_from_entry(pe, f"models.{name}.principles.{pid}")
                    for pid, pe in principles.items()
                }
            out[name] = options
    except ConfigError as exc:
        raise ConfigError(exc.detail, path=p) from None
    return out
