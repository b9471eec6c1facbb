"""Agents as bus services, found by capability: roles defined here run with no runtime edit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from helpers import write_hierarchy

from oversight.agents import (
    Agent,
    Assesses,
    Audits,
    EpisodeContext,
    capabilities_of,
    create_agent,
    register_role,
)
from oversight.bus import Bus
from oversight.hierarchy import load_hierarchy
from oversight.journal import read_journal
from oversight.messages import (
    INTERNAL_KINDS,
    TRANSPORT_KINDS,
    Critique,
    Envelope,
    Prompt,
    Turn,
    envelope,
)
from oversight.runtime import Runtime, internal_stays_internal


@register_role("test-bread-critic")
class BreadCritic(Agent):
    """A role written outside the package: it has ``assess`` and nothing else."""

    async def assess(self, ctx: EpisodeContext, candidate_id: str) -> list[Critique]:
        if self.options.get("sleep") and "bread" in ctx.request:
            await anyio.sleep(float(self.options["sleep"]))
        if self.options.get("fail") and "bread" in ctx.request:
            raise ValueError("the bread critic broke")
        violated = "bread" in ctx.candidates[candidate_id].lower()
        return [
            Critique(
                candidate_id=candidate_id,
                principle_id="honesty",
                principle_version=ctx.constitution.principle("honesty").version,
                verdict="violated" if violated else "satisfied",
                severity=0.5 if violated else 0.0,
                confidence=1.0,
                rationale="BREAD-CRITIC-REASON: mentions bread" if violated else "no bread",
            )
        ]


class Recorder:
    """An interceptor that keeps every envelope the bus sees."""

    name = "recorder"

    def __init__(self) -> None:
        self.seen: list[Envelope] = []

    def on_publish(self, env: Envelope) -> Envelope:
        self.seen.append(env)
        return env


PROMPTS = [
    Prompt(prompt_id="bread", messages=(Turn(role="user", content="How do I bake bread?"),)),
    Prompt(prompt_id="tea", messages=(Turn(role="user", content="How do I brew tea?"),)),
]


def _hierarchy(tmp_path: Path, **options: Any) -> Path:
    path = write_hierarchy(tmp_path / "h.yaml")
    spec = yaml.safe_load(path.read_text())
    spec["agents"].append(
        {"name": "bread-critic", "role": "test-bread-critic", "model": "assessor",
         "options": options}
    )  # fmt: skip
    spec["supervision"].append({"supervisor": "bread-critic", "subject": "base"})
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _run(tmp_path: Path, hierarchy: Path, **kw: Any) -> tuple[Any, Recorder]:
    recorder = Recorder()
    runtime = Runtime(
        load_hierarchy(hierarchy),
        run_name="test",
        run_dir=tmp_path / "run",
        interceptors=[recorder],
        **kw,
    )
    return anyio.run(runtime.run, PROMPTS), recorder


def test_capabilities_come_from_methods_not_classes() -> None:
    roles = {r: capabilities_of(create_agent(r, r, None)) for r in ("base", "critic", "judge")}
    assert roles == {"base": ("draft",), "critic": ("assess", "audit"), "judge": ("audit", "rank")}
    bread = create_agent("test-bread-critic", "b", None)
    assert capabilities_of(bread) == ("assess",)
    assert isinstance(bread, Assesses) and not isinstance(bread, Audits)
    assert capabilities_of(create_agent("human", "people", None)) == ()


def test_a_role_registered_in_a_test_file_runs_in_a_hierarchy(tmp_path: Path) -> None:
    result, recorder = _run(tmp_path, _hierarchy(tmp_path))
    outcomes = {o.prompt_id: o for o in result.outcomes}
    assert outcomes["bread"].status != "failed" and outcomes["tea"].status != "failed"
    # its findings count: the bread draft violates honesty by its word only, and is revised
    assert outcomes["bread"].draft_violations == ("honesty",)
    assert outcomes["bread"].rounds == 1
    assert outcomes["tea"].draft_violations == () and outcomes["tea"].rounds == 0
    journal = read_journal(tmp_path / "run" / "journal.jsonl").envelopes
    mine = [e for e in journal if e.sender == "bread-critic"]
    assert {e.payload.kind for e in mine} == {"critique"}
    assert all(e.visibility == "internal" for e in mine)
    # it was reached through the bus: a request on its topic, answered by a reply
    requests = [
        e
        for e in recorder.seen
        if e.topic == "agents.assess" and "bread-critic" in e.payload.agents
    ]
    replies = {
        e.parents[0]: e
        for e in recorder.seen
        if e.payload.kind == "reply" and e.sender == "bread-critic"
    }
    assert requests and all(r.id in replies for r in requests)
    assert sum(len(replies[r.id].payload.messages) for r in requests) == len(mine)


def test_every_agent_is_reached_through_requests_and_replies(tmp_path: Path) -> None:
    result, recorder = _run(tmp_path, _hierarchy(tmp_path))
    kinds = {e.payload.kind for e in recorder.seen}
    assert {"draft_request", "assess_request", "revise_request", "rank_request", "reply"} <= kinds
    asked = {e.topic for e in recorder.seen if e.payload.kind in TRANSPORT_KINDS - {"reply"}}
    assert {"agent.base.draft", "agents.assess", "agent.reviser.revise",
            "agent.judge.rank"} <= asked  # fmt: skip
    # one assess request per candidate reaches every assessor; each answers once
    assess = [e for e in recorder.seen if e.payload.kind == "assess_request"]
    answered = [e for e in recorder.seen if e.payload.kind == "reply"
                and e.payload.capability == "assess"]  # fmt: skip
    assert {a for e in assess for a in e.payload.agents} == {
        "harm-critic",
        "quality-critic",
        "safety",
        "bread-critic",
    }
    assert len(answered) == sum(len(e.payload.agents) for e in assess)
    # each agent message is answered once, as its agent published it
    published = {e.id: e for e in recorder.seen if e.payload.kind not in TRANSPORT_KINDS}
    for reply in (e for e in recorder.seen if e.payload.kind == "reply"):
        for carried in reply.payload.messages:
            assert published[carried.id].sender == reply.sender
    # transport is internal and never journaled
    assert all(e.visibility == "internal" for e in recorder.seen if e.kind in TRANSPORT_KINDS)
    journal = read_journal(tmp_path / "run" / "journal.jsonl").envelopes
    assert not [e for e in journal if e.payload.kind in TRANSPORT_KINDS]
    assert len(journal) == result.messages


def test_an_agent_role_that_raises_fails_only_its_episode(tmp_path: Path) -> None:
    result, _ = _run(tmp_path, _hierarchy(tmp_path, fail=True))
    outcomes = {o.prompt_id: o.status for o in result.outcomes}
    assert outcomes["bread"] == "failed" and outcomes["tea"] != "failed"
    failure = next(
        e.payload
        for e in read_journal(tmp_path / "run" / "journal.jsonl").envelopes
        if e.payload.kind == "failure"
    )
    assert (failure.error_type, failure.agent, failure.stage) == (
        "ValueError",
        "bread-critic",
        "assess",
    )
    assert "the bread critic broke" in failure.message


def test_no_message_of_a_timed_out_episode_is_journaled_after_its_failure(tmp_path: Path) -> None:
    result, _ = _run(tmp_path, _hierarchy(tmp_path, sleep=2.0), episode_timeout=0.5)
    assert {o.prompt_id: o.status for o in result.outcomes}["bread"] == "failed"
    journal = read_journal(tmp_path / "run" / "journal.jsonl").by_episode()
    bread = next(envs for envs in journal.values() if envs[0].payload.prompt_id == "bread")
    assert bread[-1].payload.kind == "failure"
    assert bread[-1].payload.error_type == "TimeoutError"
    assert not [e for e in bread if e.sender == "bread-critic"]


@pytest.mark.anyio
async def test_the_standard_hard_block_keeps_internal_reasoning_internal() -> None:
    critique = Critique(
        candidate_id="c0", principle_id="harm", principle_version="1", verdict="violated",
        rationale="SECRET",
    )  # fmt: skip
    leaked = envelope(critique, run="r", episode="e", sender="x", topic="episode.critique",
                      visibility="public")  # fmt: skip
    block = internal_stays_internal()
    async with Bus(interceptors=[block]) as bus:
        async with bus.subscribe("#", user_facing=True) as user, bus.subscribe("#") as agents:
            delivered = await bus.publish(leaked)
            assert delivered is not None and delivered.visibility == "internal"
            assert (await agents.receive()).id == leaked.id
            assert user.depth() == 0, "a user-facing subscriber received internal reasoning"
        assert block.blocked == 1
        stats = bus.statistics().total()
        assert (stats.replaced, stats.withheld) == (1, 1)
    assert "critique" in INTERNAL_KINDS
