"""How a simulated agent behaves: one model shared by the live backend and the vectorised simulator.

Both :class:`oversight.backends.simulated.SimulatedBackend` (one call at a time, inside the live
runtime) and :mod:`oversight.simulate.engine` (numpy arrays over 10^5 episodes at once) draw
agent answers through the functions of this module, so the two cannot drift apart: only the
source of randomness differs (a hash-seeded generator per call in the backend, one bulk
generator per chunk in the simulator).

The model, per assessed cell (case, candidate, principle) and agent:

* **Truth.** A case is harmful or benign (its ``labels["harm"]``); a candidate answer either
  complies or refuses. A principle is of one of three kinds (:func:`principle_kind`): ``harm``
  (violated when a harmful request gets a compliant answer), ``overrefusal`` (violated when a
  benign request is refused) or ``neutral`` (never truly violated by a simulated answer; critics
  can still raise false alarms on it).
* **Correlated errors.** The agent's evidence is a standard normal
  ``z = sqrt(rho) * Z_case + sqrt(rho_model) * Z_model + sqrt(1 - rho - rho_model) * eps``:
  ``Z_case`` is the case's latent difficulty, shared by every agent; ``Z_model`` is shared by
  the agents that run on the same model configuration; ``eps`` is the agent's own noise. The
  agent answers wrongly when ``z < Phi^-1(error_rate)``, where the error rate is its miss rate on
  violated cells and its false-alarm rate on the others. The marginal error rates are therefore
  exactly the configured ones whatever the correlation; the correlation only decides whether
  agents fail on the *same* cases (a Gaussian copula).
* **Calibration.** The reported probability of "Yes, violated" is ``conf`` for a yes and
  ``1 - conf`` for a no, with ``conf = 0.5 + (max_confidence - 0.5) * ((1 - calibration) +
  calibration * ease)`` and ``ease = sigmoid(1.702 * (z - threshold))``: a calibrated agent is
  less sure exactly when it is wrong. ``bias`` then shifts the log-odds towards "Yes".
* **Judges** prefer the truly better candidate with probability ``1 - judge_error_rate`` (same
  latent), and add ``position_bias`` to the first-shown candidate (cancelled by the runtime's
  two-order comparison).
* **Base and reviser.** The base complies with a harmful request with ``harmful_comply_rate``
  (``jailbreak_comply_rate`` for jailbreak-wrapped ones) and refuses a benign request with
  ``benign_refuse_rate`` (``scary_refuse_rate`` for safe requests that sound dangerous). A
  revision that addresses a harm principle refuses with ``revise_fix_rate``; one that addresses
  an over-refusal principle complies with ``revise_fix_rate``; other revisions keep the behaviour.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any, Literal, TypeAlias

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import ConfigError

PrincipleKind: TypeAlias = Literal["harm", "overrefusal", "neutral"]

HARM_WORDS = ("harm", "safety", "danger", "violen", "weapon", "lawful", "legal", "hazard")
OVERREFUSAL_WORDS = ("help", "refus", "overcaution", "over-caution", "useful")

COMPLY_MARK = "[simulated answer: complies]"
REFUSE_MARK = "[simulated answer: refuses]"
_REFUSAL_PHRASES = ("i can't", "i cannot", "i won't", "i will not", "i'm sorry", "i am sorry")

Probability = float


def principle_kind(principle_id: str, overrides: Mapping[str, str] | None = None) -> PrincipleKind:
    """The truth kind of a principle: an explicit override, else read from its id.

    Ids containing ``harm``, ``safety``, ``danger``, ``lawful``, ... are ``harm``; ids
    containing ``help``, ``refus``, ... are ``overrefusal``; all others are ``neutral``.
    """
    if overrides and principle_id in overrides:
        kind = overrides[principle_id]
        if kind not in ("harm", "overrefusal", "neutral"):
            raise ConfigError(
                f"principle_kinds.{principle_id}: {kind!r} is not one of harm, overrefusal, neutral"
            )
        return kind  # type: ignore[return-value]
    low = principle_id.lower()
    if any(w in low for w in HARM_WORDS):
        return "harm"
    if any(w in low for w in OVERREFUSAL_WORDS):
        return "overrefusal"
    return "neutral"


def truly_violated(
    kind: PrincipleKind | str, harmful: np.ndarray | bool, complies: np.ndarray | bool
) -> np.ndarray:
    """Ground truth of a (case, candidate, principle) cell, vectorised."""
    h = np.asarray(harmful, dtype=bool)
    c = np.asarray(complies, dtype=bool)
    if kind == "harm":
        return h & c
    if kind == "overrefusal":
        return ~h & ~c
    return np.zeros(np.broadcast(h, c).shape, dtype=bool)


class Rates(BaseModel):
    """Error rates of an agent, overall or for one principle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    miss_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """P(the agent says "not violated" | the cell is violated). None: inherit."""
    false_alarm_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """P(the agent says "violated" | the cell is not violated). None: inherit."""


class AgentBehaviour(BaseModel):
    """Options of the ``simulated`` backend (the ``options:`` of a model in a hierarchy file).

    Every probability must lie in [0, 1]; ``correlation + model_correlation`` must not exceed 1.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seed: int = 0
    """Seed of every draw; with the episode, agent and task it fixes each answer."""
    miss_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """P(a critic/auditor/safety agent answers "not violated" on a violated cell)."""
    false_alarm_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    """P(it answers "violated" on a cell that is not violated)."""
    principles: dict[str, Rates] = Field(default_factory=dict)
    """Per-principle overrides of the two rates."""
    agents: dict[str, Rates] = Field(default_factory=dict)
    """Per-agent overrides (an agent name from the hierarchy); these win over ``principles``."""
    correlation: float = Field(default=0.3, ge=0.0, le=1.0)
    """Weight rho of the case's shared latent difficulty in every agent's evidence."""
    model_correlation: float = Field(default=0.0, ge=0.0, le=1.0)
    """Extra weight of a latent shared only by agents on this same model configuration."""
    max_confidence: float = Field(default=0.95, ge=0.5, le=1.0)
    """Confidence of the agent on the easiest cases."""
    calibration: float = Field(default=0.5, ge=0.0, le=1.0)
    """0: constant confidence; 1: confidence tracks how easy the cell is for the agent."""
    bias: float = 0.0
    """Log-odds shift of P("Yes") (positive: flags more often than its rates say)."""
    judge_error_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    """P(a judge prefers the worse of two candidates that differ in truth)."""
    position_bias: float = Field(default=0.0, ge=-0.5, le=0.5)
    """Added to a judge's P(first-shown candidate is better) (clipped to [0, 1], so it cancels
    exactly over both orders only while neither order is clipped)."""
    harmful_comply_rate: float = Field(default=0.3, ge=0.0, le=1.0)
    """P(the base complies with a plainly harmful request)."""
    jailbreak_comply_rate: float = Field(default=0.6, ge=0.0, le=1.0)
    """P(the base complies with a jailbreak-wrapped harmful request)."""
    benign_refuse_rate: float = Field(default=0.03, ge=0.0, le=1.0)
    """P(the base refuses an ordinary benign request)."""
    scary_refuse_rate: float = Field(default=0.3, ge=0.0, le=1.0)
    """P(the base refuses a safe request that sounds dangerous)."""
    revise_fix_rate: float = Field(default=0.9, ge=0.0, le=1.0)
    """P(a revision addressing a harm / over-refusal principle switches the behaviour."""
    latency: float = Field(default=0.0, ge=0.0)
    """Seconds each batched call sleeps (live runtime only)."""
    principle_kinds: dict[str, Literal["harm", "overrefusal", "neutral"]] = Field(
        default_factory=dict
    )
    """Truth kind of principles whose id does not say it (see :func:`principle_kind`)."""

    @model_validator(mode="after")
    def _check_weights(self) -> AgentBehaviour:
        if self.correlation + self.model_correlation > 1.0:
            raise ValueError(
                f"correlation ({self.correlation}) + model_correlation "
                f"({self.model_correlation}) must not exceed 1"
            )
        return self

    def rates(self, agent: str, principle: str) -> tuple[float, float]:
        """(miss, false alarm) of ``agent`` on ``principle``: agent > principle > default."""
        miss, fa = self.miss_rate, self.false_alarm_rate
        for override in (self.principles.get(principle), self.agents.get(agent)):
            if override is not None:
                miss = override.miss_rate if override.miss_rate is not None else miss
                fa = override.false_alarm_rate if override.false_alarm_rate is not None else fa
        return miss, fa

    def group(self) -> str:
        """Stable id of this model configuration: agents with equal options share ``Z_model``."""
        blob = self.model_dump_json(exclude={"agents", "latency"})
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


def parse_behaviour(options: Mapping[str, Any], *, where: str = "options") -> AgentBehaviour:
    """Validate backend options, turning pydantic errors into a :class:`ConfigError`."""
    from pydantic import ValidationError

    try:
        return AgentBehaviour.model_validate(dict(options))
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid simulated-agent options: {problems}") from None


# --- the shared vectorised draws ---------------------------------------------------------------


def error_threshold(rate: np.ndarray | float | Sequence[float]) -> np.ndarray:
    """``Phi^-1(rate)`` elementwise, with +-inf at 1 and 0."""
    r = np.asarray(rate, dtype=np.float64)
    out = np.empty(r.shape, dtype=np.float64)
    flat_r, flat_o = r.reshape(-1), out.reshape(-1)
    nd = NormalDist()
    for i, v in enumerate(flat_r):
        flat_o[i] = -math.inf if v <= 0.0 else math.inf if v >= 1.0 else nd.inv_cdf(float(v))
    return out


def evidence(
    z_case: Any,
    z_model: Any,
    eps: Any,
    correlation: float,
    model_correlation: float,
) -> np.ndarray:
    """The agent's standard-normal evidence from the three latents (broadcasting)."""
    own = max(0.0, 1.0 - correlation - model_correlation)
    return (
        np.float32(math.sqrt(correlation)) * z_case
        + np.float32(math.sqrt(model_correlation)) * z_model
        + np.float32(math.sqrt(own)) * eps
    )


def p_yes_from_evidence(
    truth: np.ndarray,
    z: np.ndarray,
    miss_threshold: float | np.ndarray,
    false_alarm_threshold: float | np.ndarray,
    behaviour: AgentBehaviour,
) -> np.ndarray:
    """P("Yes, violated") reported by an agent with evidence ``z`` on cells of ``truth``."""
    thr = np.where(truth, miss_threshold, false_alarm_threshold)
    wrong = z < thr
    says_yes = truth ^ wrong
    ease = 1.0 / (1.0 + np.exp(-1.702 * np.clip(z - thr, -30.0, 30.0)))
    conf = 0.5 + (behaviour.max_confidence - 0.5) * (
        (1.0 - behaviour.calibration) + behaviour.calibration * ease
    )
    p = np.where(says_yes, conf, 1.0 - conf)
    return apply_bias(p, behaviour.bias)


def apply_bias(p: np.ndarray, bias: float) -> np.ndarray:
    """Shift P("Yes") by ``bias`` in log-odds (float32; unchanged when ``bias`` is 0)."""
    if bias:
        logit = np.log(np.clip(p, 1e-9, 1 - 1e-9) / np.clip(1 - p, 1e-9, 1.0))
        p = 1.0 / (1.0 + np.exp(-(logit + bias)))
    return np.asarray(p).astype(np.float32)


def judge_prefers_first(
    first_better: np.ndarray,
    differ: np.ndarray,
    z: np.ndarray,
    threshold: float,
    behaviour: AgentBehaviour,
) -> np.ndarray:
    """P(the first-shown candidate is better) as the judge reports it.

    When the two candidates differ in truth, the judge picks the better one unless
    ``z < threshold`` (``threshold = Phi^-1(judge_error_rate)``), with the calibrated confidence
    of :func:`p_yes_from_evidence`; when they are equally good it reports 0.5.
    """
    wrong = z < threshold
    picks_first = first_better ^ wrong
    ease = 1.0 / (1.0 + np.exp(-1.702 * np.clip(z - threshold, -30.0, 30.0)))
    conf = 0.5 + (behaviour.max_confidence - 0.5) * (
        (1.0 - behaviour.calibration) + behaviour.calibration * ease
    )
    p = np.where(differ, np.where(picks_first, conf, 1.0 - conf), 0.5) + behaviour.position_bias
    return np.clip(p, 0.0, 1.0).astype(np.float32)


def base_comply_probability(
    behaviour: AgentBehaviour, harmful: np.ndarray, category: np.ndarray
) -> np.ndarray:
    """P(the base's draft complies) per case; ``category`` is a string array of labels."""
    h = np.asarray(harmful, dtype=bool)
    cat = np.asarray(category).astype(str)
    jail = np.char.find(np.char.lower(cat), "jailbreak") >= 0
    scary = np.isin(np.char.lower(cat), ["safe_scary", "scary", "xstest_safe", "borderline"])
    harmful_p = np.where(jail, behaviour.jailbreak_comply_rate, behaviour.harmful_comply_rate)
    benign_p = 1.0 - np.where(scary, behaviour.scary_refuse_rate, behaviour.benign_refuse_rate)
    return np.where(h, harmful_p, benign_p)


def revised_complies(
    behaviour: AgentBehaviour,
    complies: np.ndarray,
    addresses_harm: np.ndarray,
    addresses_overrefusal: np.ndarray,
    u: np.ndarray,
) -> np.ndarray:
    """Behaviour of a revision: harm fixes refuse, over-refusal fixes comply (harm first)."""
    fixed = u < behaviour.revise_fix_rate
    out = np.asarray(complies, dtype=bool).copy()
    out = np.where(addresses_harm & fixed, False, out)
    out = np.where(~addresses_harm & addresses_overrefusal & fixed, True, out)
    return out


# --- answers as text -------------------------------------------------------------------------


def answer_text(complies: bool, request: str = "", answer_id: str = "") -> str:
    """A readable simulated answer that carries its behaviour in a marker.

    The request is not echoed, so that refusal detectors never mistake it for the answer.
    ``answer_id`` names the answer among the episode's candidates: a model's revision is a new
    text, not a copy of an earlier candidate, and the reviser drops a revision that repeats
    eight words of an internal rationale (:func:`oversight.critiques.copies_reasoning`), which
    quotes earlier candidates. So the id sits within every run of eight words of the answer.
    """
    tag = answer_id or "a"
    if complies:
        return f"{COMPLY_MARK} Sure - here is answer {tag}, a direct and complete reply."
    return f"{REFUSE_MARK} Sorry, I can't help ({tag}) with that; I can suggest safer resources."


def complies_from_text(text: str) -> bool:
    """Recover a candidate's behaviour: the simulated marker, else common refusal phrases."""
    if COMPLY_MARK in text:
        return True
    if REFUSE_MARK in text:
        return False
    low = text.strip().lower()
    return not any(low.startswith(p) or f" {p}" in low[:200] for p in _REFUSAL_PHRASES)


def is_harmful_label(labels: Mapping[str, Any]) -> bool:
    """``labels["harm"]`` read as a bool (``harmful``/``unsafe``/``true``/``1``)."""
    value = str(labels.get("harm", "")).strip().lower()
    return value in ("harmful", "unsafe", "true", "1", "yes")


def stable_seed(*parts: object) -> int:
    """A 64-bit seed from any parts, independent of PYTHONHASHSEED and process."""
    blob = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little")


_STANDARD_NORMAL = NormalDist()


def stable_uniform(*parts: object) -> float:
    """One uniform draw in (0, 1) fixed by ``parts`` (53 bits of a BLAKE2b hash)."""
    return ((stable_seed(*parts) >> 11) + 0.5) / 2.0**53


def stable_normal(*parts: object) -> float:
    """One standard-normal draw fixed by ``parts`` (the inverse CDF of :func:`stable_uniform`)."""
    return _STANDARD_NORMAL.inv_cdf(stable_uniform(*parts))
