"""The ``simulated`` backend: configured error rates, correlation, reproducibility, answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from oversight.backends import GenerateRequest, ScoreRequest, create_backend
from oversight.backends.simulated import SimulatedBackend
from oversight.critiques import copies_reasoning
from oversight.errors import ConfigError
from oversight.simulate.behaviour import (
    COMPLY_MARK,
    REFUSE_MARK,
    answer_text,
    complies_from_text,
    principle_kind,
)

HARMFUL = {"harm": "harmful", "category": "harmful"}
BENIGN = {"harm": "benign", "category": "benign"}
COMPLY = answer_text(True)
REFUSE = answer_text(False)


def critique(agent: str, episode: int, candidate: str, labels: dict, principle: str = "harm"):
    return ScoreRequest(
        messages=({"role": "user", "content": "does it violate?"},),
        meta={"role": "critic", "agent": agent, "task": "critique", "episode": f"e{episode}",
              "principle": principle, "labels": labels, "candidate": candidate,
              "candidate_id": "c0"},
    )  # fmt: skip


async def yes_probs(backend: SimulatedBackend, requests: list[ScoreRequest]) -> np.ndarray:
    return np.array([s["Yes"] for s in await backend.score(requests)])


def test_registered_by_name() -> None:
    assert isinstance(create_backend("simulated", seed=3), SimulatedBackend)


@pytest.mark.parametrize(
    "options",
    [{"miss_rate": 1.5}, {"false_alarm_rate": -0.1}, {"correlation": 0.7, "model_correlation": 0.5},
     {"unknown_option": 1}],
)  # fmt: skip
def test_bad_options_name_the_key(options: dict) -> None:
    with pytest.raises(ConfigError) as info:
        SimulatedBackend(**options)
    assert "options" in str(info.value)


async def test_error_rates_match_configuration() -> None:
    n = 4000
    backend = SimulatedBackend(seed=1, miss_rate=0.2, false_alarm_rate=0.05, correlation=0.3)
    violated = await yes_probs(backend, [critique("c", i, COMPLY, HARMFUL) for i in range(n)])
    fine = await yes_probs(backend, [critique("c", i, REFUSE, HARMFUL) for i in range(n)])
    miss = float((violated < 0.4).mean())  # verdict band 0.1 around 0.5
    false_alarm = float((fine > 0.6).mean())
    assert abs(miss - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n)
    assert abs(false_alarm - 0.05) < 4 * math.sqrt(0.05 * 0.95 / n)


async def test_answers_are_reproducible_whatever_the_batching() -> None:
    requests = [critique("c", i, COMPLY, HARMFUL) for i in range(50)]
    one = await yes_probs(SimulatedBackend(seed=5), requests)
    backend = SimulatedBackend(seed=5)
    reversed_ = await yes_probs(backend, requests[::-1])
    singles = [float((await backend.score([r]))[0]["Yes"]) for r in requests]
    assert np.array_equal(one, reversed_[::-1])
    assert np.allclose(one, singles)
    other_seed = await yes_probs(SimulatedBackend(seed=6), requests)
    assert not np.array_equal(one, other_seed)


async def test_shared_difficulty_correlates_errors_of_different_agents() -> None:
    n = 3000

    async def both_wrong(correlation: float) -> float:
        backend = SimulatedBackend(seed=2, miss_rate=0.2, correlation=correlation)
        a = await yes_probs(backend, [critique("a", i, COMPLY, HARMFUL) for i in range(n)])
        b = await yes_probs(backend, [critique("b", i, COMPLY, HARMFUL) for i in range(n)])
        return float(((a < 0.4) & (b < 0.4)).mean())

    independent, correlated = await both_wrong(0.0), await both_wrong(0.8)
    assert abs(independent - 0.04) < 4 * math.sqrt(0.04 * 0.96 / n)  # 0.2 * 0.2
    assert correlated > 0.1  # shared difficulty: the two critics fail on the same cases


async def test_agents_on_different_models_share_the_case_difficulty() -> None:
    """The case's latent difficulty belongs to the case: a critic and a judge on models with
    different seeds fail on the same cases (the vectorised simulator draws one per episode)."""
    n = 3000
    critic = SimulatedBackend(seed=1, miss_rate=0.2, correlation=0.8)
    judge = SimulatedBackend(seed=2, miss_rate=0.2, correlation=0.8)
    a = await yes_probs(critic, [critique("critic", i, COMPLY, HARMFUL) for i in range(n)])
    b = await yes_probs(judge, [critique("judge", i, COMPLY, HARMFUL) for i in range(n)])
    assert abs(float((a < 0.4).mean()) - 0.2) < 4 * math.sqrt(0.2 * 0.8 / n)
    assert float(((a < 0.4) & (b < 0.4)).mean()) > 0.1  # independent: 0.04


async def test_difficulty_label_sets_the_shared_latent() -> None:
    backend = SimulatedBackend(seed=0, miss_rate=0.3, correlation=1.0)
    hard = {**HARMFUL, "difficulty": "0.99"}
    easy = {**HARMFUL, "difficulty": "0.01"}
    assert (
        await yes_probs(backend, [critique("a", i, COMPLY, hard) for i in range(20)])
    ).max() < 0.4
    assert (
        await yes_probs(backend, [critique("a", i, COMPLY, easy) for i in range(20)])
    ).min() > 0.6


async def test_calibrated_agents_are_less_confident_when_wrong() -> None:
    backend = SimulatedBackend(seed=4, miss_rate=0.3, calibration=1.0, correlation=0.0)
    p = await yes_probs(backend, [critique("c", i, COMPLY, HARMFUL) for i in range(2000)])
    confidence = np.abs(2 * p - 1)
    wrong = p < 0.5
    assert confidence[wrong].mean() < confidence[~wrong].mean() - 0.1


async def test_per_agent_and_per_principle_rates_override_defaults() -> None:
    backend = SimulatedBackend(
        seed=0, miss_rate=0.0, principles={"lawful": {"miss_rate": 1.0}},
        agents={"blind": {"miss_rate": 1.0}},
    )  # fmt: skip
    assert principle_kind("lawful") == "harm"  # a compliant answer to a harmful request
    sharp = await yes_probs(backend, [critique("sharp", i, COMPLY, HARMFUL) for i in range(30)])
    lawful = await yes_probs(
        backend, [critique("sharp", i, COMPLY, HARMFUL, "lawful") for i in range(30)]
    )
    blind = await yes_probs(backend, [critique("blind", i, COMPLY, HARMFUL) for i in range(30)])
    assert sharp.min() > 0.5 and lawful.max() < 0.5 and blind.max() < 0.5


async def test_draft_and_revision_behaviour() -> None:
    backend = SimulatedBackend(seed=0, harmful_comply_rate=1.0, benign_refuse_rate=0.0,
                               revise_fix_rate=1.0)  # fmt: skip

    def request(task: str, labels: dict, **extra: object) -> GenerateRequest:
        return GenerateRequest(
            messages=({"role": "user", "content": "hello"},),
            meta={"role": "base", "agent": "base", "task": task, "episode": "e1",
                  "labels": labels, **extra},
        )  # fmt: skip

    draft, benign = await backend.generate([request("draft", HARMFUL), request("draft", BENIGN)])
    assert draft.text.startswith(COMPLY_MARK) and benign.text.startswith(COMPLY_MARK)
    (fixed,) = await backend.generate(
        [request("revise", HARMFUL, candidate=draft.text, candidate_id="c0", principles=("harm",))]
    )
    assert fixed.text.startswith(REFUSE_MARK) and not complies_from_text(fixed.text)
    (kept,) = await backend.generate(
        [
            request(
                "revise", HARMFUL, candidate=draft.text, candidate_id="c0", principles=("honesty",)
            )
        ]
    )
    assert complies_from_text(kept.text)
    # text from a real model: refusal phrases are recognised
    assert not complies_from_text("I'm sorry, but I can't help with that.")
    assert complies_from_text("Here are three bread recipes.")


async def test_judge_prefers_the_right_answer_and_position_bias_cancels() -> None:
    def judge(first: str, second: str, ids: tuple[str, str]) -> ScoreRequest:
        return ScoreRequest(
            messages=({"role": "user", "content": "A or B?"},), choices=("A", "B"),
            meta={"role": "judge", "agent": "judge", "task": "judge", "episode": "e1",
                  "labels": HARMFUL, "candidates": (first, second), "candidate_ids": ids},
        )  # fmt: skip

    both_orders = [judge(REFUSE, COMPLY, ("c1", "c0")), judge(COMPLY, REFUSE, ("c0", "c1"))]
    fair = SimulatedBackend(seed=0, judge_error_rate=0.0)
    biased = SimulatedBackend(seed=0, judge_error_rate=0.0, position_bias=0.04)  # no clipping
    f_forward, f_backward = await fair.score(both_orders)
    b_forward, b_backward = await biased.score(both_orders)
    assert f_forward["A"] > 0.5 and f_backward["B"] > 0.5  # the refusal wins a harmful request
    assert b_forward["A"] != pytest.approx(f_forward["A"])  # the bias is there in each order
    # ... and averaging the two orders (what the judge agent does) cancels it
    assert (b_forward["A"] + b_backward["B"]) / 2 == pytest.approx(
        (f_forward["A"] + f_backward["B"]) / 2, abs=1e-6
    )


async def test_every_candidate_of_an_episode_is_its_own_text() -> None:
    """A revision is a new text: no two candidates of an episode share a run of eight words,
    so the reviser's leak check (a revision may not repeat eight words of an internal rationale,
    and critiques quote earlier candidates) never drops a simulated revision for repeating an
    earlier candidate word for word. Behaviour still comes from the marker."""
    backend = SimulatedBackend(seed=0, benign_refuse_rate=0.0, revise_fix_rate=1.0)

    def request(task: str, **extra: object) -> GenerateRequest:
        return GenerateRequest(
            messages=({"role": "user", "content": "hello"},),
            meta={"role": "base", "agent": "base", "task": task, "episode": "e1",
                  "labels": BENIGN, **extra},
        )  # fmt: skip

    (draft,) = await backend.generate([request("draft")])
    refusal = answer_text(False)
    asks = [
        request("revise", candidate=c, candidate_id=cid, principles=(p,), round=r)
        for c, cid, p, r in (
            (draft.text, "c0", "honesty", 1),  # keeps complying
            (draft.text, "c0", "honesty", 2),  # the same candidate revised again
            (refusal, "c1", "helpfulness", 2),  # a refusal fixed: complies
        )
    ]
    texts = [draft.text] + [g.text for g in await backend.generate(asks)]
    assert all(complies_from_text(t) for t in texts)
    for i, one in enumerate(texts):
        for other in texts[i + 1 :]:
            assert not copies_reasoning(one, [f'"{other}": quoted by a critique'], [])
