"""Messages: round-trip JSON is the identity, the union rejects what it should."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from oversight.messages import (
    ENVELOPE_ADAPTER,
    INTERNAL_KINDS,
    Critique,
    Envelope,
    Prompt,
    Turn,
    envelope,
    json_schema,
)

text = st.text(max_size=40)
prob = st.floats(0, 1, allow_nan=False)
ids = st.text(alphabet="abcdef0123456789", min_size=1, max_size=12)


def payloads() -> st.SearchStrategy:
    from oversight import messages as m

    return st.one_of(
        st.builds(
            m.Prompt,
            prompt_id=ids,
            messages=st.lists(
                st.builds(
                    Turn, role=st.sampled_from(["user", "assistant", "system"]), content=text
                ),
                min_size=1,
                max_size=3,
            ).map(tuple),
            context=st.dictionaries(ids, text, max_size=2),
            labels=st.dictionaries(ids, text, max_size=2),
        ),
        st.builds(m.Draft, candidate_id=ids, text=text, model=ids),
        st.builds(
            m.Critique,
            candidate_id=ids,
            principle_id=ids,
            principle_version=ids,
            verdict=st.sampled_from(["violated", "satisfied", "uncertain"]),
            severity=prob,
            confidence=prob,
            rationale=text,
        ),
        st.builds(
            m.SafetyAssessment,
            candidate_id=ids,
            risk=prob,
            request_harmful=prob,
            signals=st.lists(
                st.sampled_from(["injection", "roleplay", "encoding"]), max_size=2
            ).map(tuple),
            categories=st.lists(ids, max_size=2).map(tuple),
        ),
        st.builds(m.Revision, candidate_id=ids, revises=ids, round=st.integers(1, 5), text=text),
        st.builds(
            m.Audit,
            subject_message=ids,
            subject_agent=ids,
            candidate_id=ids,
            principle_id=ids,
            agrees=st.booleans(),
            verdict=st.sampled_from(["violated", "satisfied"]),
        ),
        st.builds(
            m.Judgment,
            ranking=st.lists(ids, min_size=1, max_size=3).map(tuple),
            scores=st.dictionaries(ids, prob, max_size=3),
            confidence=prob,
        ),
        st.builds(m.Conflict, principles=st.lists(ids, max_size=3).map(tuple)),
        st.builds(
            m.Resolution,
            strategy=st.sampled_from(["none", "priority", "weighted"]),
            winner=st.none() | ids,
            path=st.lists(ids, max_size=3).map(tuple),
        ),
        st.builds(m.Escalation, case_id=ids, triggers=st.lists(ids, max_size=2).map(tuple)),
        st.builds(
            m.Adjudication,
            case_id=ids,
            reviewer=ids,
            choice=st.none() | ids,
            edited_text=st.none() | text,
        ),
        st.builds(
            m.Consensus, candidate_id=ids, text=text, rejected=st.lists(ids, max_size=2).map(tuple)
        ),
        st.builds(m.Failure, stage=ids, error_type=ids, message=text),
    )


@settings(max_examples=300, deadline=None)
@given(payloads(), st.lists(ids, max_size=3))
def test_json_round_trip_is_the_identity(payload: object, parents: list[str]) -> None:
    env = envelope(payload, run="r", episode="e", sender="s", topic="t", parents=parents)
    assert ENVELOPE_ADAPTER.validate_json(env.model_dump_json()) == env
    assert Envelope.model_validate(json.loads(env.model_dump_json())) == env


def test_reasoning_kinds_default_to_internal() -> None:
    critique = Critique(
        candidate_id="c0", principle_id="harm", principle_version="1", verdict="violated"
    )
    assert envelope(critique, run="r", episode="e", sender="s", topic="t").visibility == "internal"
    prompt = Prompt(prompt_id="p", messages=(Turn(role="user", content="hi"),))
    assert envelope(prompt, run="r", episode="e", sender="s", topic="t").visibility == "public"
    assert {"critique", "safety_assessment", "audit", "judgment"} <= INTERNAL_KINDS


def test_messages_are_frozen_and_strict() -> None:
    critique = Critique(
        candidate_id="c0", principle_id="harm", principle_version="1", verdict="violated"
    )
    with pytest.raises(ValidationError):
        critique.verdict = "satisfied"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="extra"):
        Critique(
            candidate_id="c0",
            principle_id="harm",
            principle_version="1",
            verdict="violated",
            surprise=1,
        )  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Critique(
            candidate_id="c0",
            principle_id="harm",
            principle_version="1",
            verdict="violated",
            severity=1.5,
        )
    bad = {"run": "r", "episode": "e", "sender": "s", "topic": "t", "payload": {"kind": "nonsense"}}
    with pytest.raises(ValidationError, match="tag"):
        Envelope.model_validate(bad)


def test_json_schema_names_every_kind() -> None:
    schema = json.dumps(json_schema())
    for kind in (
        "prompt",
        "draft",
        "critique",
        "safety_assessment",
        "revision",
        "audit",
        "judgment",
        "conflict",
        "resolution",
        "escalation",
        "adjudication",
        "consensus",
        "failure",
    ):
        assert f'"{kind}"' in schema
