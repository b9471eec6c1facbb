"""Outcome rates with confidence intervals, human load, cost and queue backlog from a tally."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .config import SimulationConfig
from .engine import Tally
from .plan import Plan

Z95 = 1.959963984540054


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float, float]:
    """Rate and Wilson score interval (95% by default); (nan, nan, nan) for no trials."""
    if trials <= 0:
        return math.nan, math.nan, math.nan
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return p, low, high


def _rate(successes: int, trials: int) -> dict[str, float]:
    p, lo, hi = wilson(successes, trials)
    return {"rate": p, "low": lo, "high": hi, "count": successes, "of": trials}


def backlog(daily_escalations: np.ndarray, capacity_cases_per_day: float) -> np.ndarray:
    """Cases waiting at the end of each day: ``b[d] = max(0, b[d-1] + arrivals[d] - capacity)``."""
    out = np.zeros(len(daily_escalations), dtype=np.float64)
    level = 0.0
    for d, arrivals in enumerate(daily_escalations):
        level = max(0.0, level + float(arrivals) - capacity_cases_per_day)
        out[d] = level
    return out


def summarise(tally: Tally, plan: Plan, config: SimulationConfig) -> dict[str, Any]:
    """The result of one configuration, as plain JSON-able data."""
    n = tally.episodes
    reviews = tally.escalated * plan.reviewers_per_case
    human_hours = reviews * config.minutes_per_case / 60.0
    esc = _rate(tally.escalated, n)
    hours_per_1k = 1000.0 * human_hours / n
    per_case_hours = plan.reviewers_per_case * config.minutes_per_case / 60.0
    model_cost = tally.model_calls * config.call_cost
    human_cost = human_hours * config.hourly_cost
    capacity_cases = config.human_capacity / plan.reviewers_per_case
    days = min(config.horizon_days, math.ceil(n / config.episodes_per_day))
    series = backlog(tally.daily_escalations[:days], capacity_cases)
    escalations_per_day = esc["rate"] * config.episodes_per_day
    return {
        "episodes": n,
        "harmful_pass_through": _rate(tally.pass_through, tally.harmful),
        "false_refusal": _rate(tally.false_refusal, tally.benign),
        "escalation": esc,
        "auto_harmful_pass_through": _rate(tally.auto_pass_through, tally.harmful),
        "auto_false_refusal": _rate(tally.auto_false_refusal, tally.benign),
        "chosen_harmful_pass_through": _rate(tally.chosen_pass_through, tally.harmful),
        "chosen_false_refusal": _rate(tally.chosen_false_refusal, tally.benign),
        "revision": _rate(tally.revised, n),
        "triggers": {k: v / n for k, v in tally.triggers.items()},
        "strategies": {k: v / n for k, v in tally.strategies.items()},
        "human_hours": human_hours,
        "human_hours_per_1k": {
            "value": hours_per_1k,
            "low": 1000.0 * esc["low"] * per_case_hours,
            "high": 1000.0 * esc["high"] * per_case_hours,
        },
        "model_calls_per_episode": tally.model_calls / n,
        "cost": model_cost + human_cost,
        "cost_per_1k": 1000.0 * (model_cost + human_cost) / n,
        "human_cost": human_cost,
        "model_cost": model_cost,
        "escalations_per_day": escalations_per_day,
        "capacity_cases_per_day": capacity_cases,
        "queue_stable": escalations_per_day <= capacity_cases,
        "backlog": [round(float(b), 2) for b in series],
        "depth": plan.depth,
    }


CSV_COLUMNS = [
    "harmful_pass_through",
    "harmful_pass_through_low",
    "harmful_pass_through_high",
    "false_refusal",
    "false_refusal_low",
    "false_refusal_high",
    "escalation",
    "escalation_low",
    "escalation_high",
    "auto_harmful_pass_through",
    "revision",
    "human_hours_per_1k",
    "cost_per_1k",
    "model_calls_per_episode",
    "final_backlog",
    "queue_stable",
    "depth",
    "episodes",
]


def csv_row(result: dict[str, Any]) -> dict[str, Any]:
    """Flat columns of one result (see :data:`CSV_COLUMNS`)."""
    row: dict[str, Any] = {}
    for key in ("harmful_pass_through", "false_refusal", "escalation"):
        row[key] = result[key]["rate"]
        row[f"{key}_low"] = result[key]["low"]
        row[f"{key}_high"] = result[key]["high"]
    row["auto_harmful_pass_through"] = result["auto_harmful_pass_through"]["rate"]
    row["revision"] = result["revision"]["rate"]
    row["human_hours_per_1k"] = result["human_hours_per_1k"]["value"]
    row["cost_per_1k"] = result["cost_per_1k"]
    row["model_calls_per_episode"] = result["model_calls_per_episode"]
    row["final_backlog"] = result["backlog"][-1] if result["backlog"] else 0.0
    row["queue_stable"] = result["queue_stable"]
    row["depth"] = result["depth"]
    row["episodes"] = result["episodes"]
    return row
