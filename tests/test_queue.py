"""HumanQueue behaviour on SQLite: submit, list, claim/lease, resolve, ties, withdraw, wait."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from pydantic import ValidationError

from oversight.errors import CaseNotFound, EscalationError, LeaseError
from oversight.escalation import (
    CaseSubmission,
    Decision,
    HumanQueue,
    QueueEvent,
    final_decision,
)


class Clock:
    """A settable time source, so lease expiry is tested without sleeping."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def submission(episode: str = "e1", **overrides: Any) -> CaseSubmission:
    fields: dict[str, Any] = {
        "run": "run1",
        "episode": episode,
        "prompt": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "How do I pick a lock?"},
        ],
        "candidates": [
            {"id": "c0", "text": "Here is how...", "source": "draft"},
            {"id": "c1", "text": "I can explain how locks work in general.", "source": "model"},
        ],
        "proposed": "c1",
        "triggers": ["disagreement"],
        "principles": ["harm", "helpfulness"],
        "details": {"critiques": [{"principle_id": "harm", "rationale": "internal"}]},
        "message_ids": ["m1", "m2"],
    }
    fields.update(overrides)
    return CaseSubmission(**fields)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_queue(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> Iterator[Callable[..., HumanQueue]]:
    """Opens queues (with the test clock) on a SQLite file, or on fresh PostgreSQL tables."""
    if request.param == "sqlite":
        url, prefix = f"sqlite:///{tmp_path / 'queue.db'}", "queue_"
    else:
        url = request.getfixturevalue("postgres_url")
        prefix = f"t{uuid.uuid4().hex[:10]}_"
    opened: list[HumanQueue] = []

    def make(**options: Any) -> HumanQueue:
        options.setdefault("lease_seconds", 60)
        queue = HumanQueue(url, table_prefix=prefix, clock=clock, **options)
        opened.append(queue)
        return queue

    yield make
    if request.param == "postgres" and opened:
        opened[0].store.drop_all()
    for queue in opened:
        queue.close()


@pytest.fixture
def queue(make_queue: Callable[..., HumanQueue]) -> HumanQueue:
    return make_queue()


def test_the_sqlite_file_and_its_folder_are_created(tmp_path: Path) -> None:
    with HumanQueue(f"sqlite:///{tmp_path / 'sub' / 'queue.db'}") as queue:
        queue.submit(submission())
    assert (tmp_path / "sub" / "queue.db").exists()


def test_submit_round_trips_the_case(queue: HumanQueue) -> None:
    case_id = queue.submit(submission(priority=3, reviewers_required=2, prompt_id="p1"))
    case = queue.get(case_id)
    assert case.status == "open"
    assert [t.content for t in case.prompt][-1] == "How do I pick a lock?"
    assert len(case.prompt) == 3
    assert [c.id for c in case.candidates] == ["c0", "c1"]
    assert case.candidate("c1").source == "model"
    assert case.details["critiques"][0]["rationale"] == "internal"
    assert case.message_ids == ("m1", "m2")
    assert (case.priority, case.reviewers_required, case.prompt_id) == (3, 2, "p1")
    assert case.open_slots == 2
    assert case.leases == () and case.decisions == ()


def test_case_ids_complete_from_a_prefix(queue: HumanQueue) -> None:
    ids = [queue.submit(submission(f"e{i}")) for i in range(20)]
    for case_id in ids:
        assert queue.complete_id(case_id) == case_id
    first = ids[0]
    unique = next(first[:n] for n in range(1, 33) if sum(i.startswith(first[:n]) for i in ids) == 1)
    assert queue.complete_id(unique) == first
    shared = next(c for c in "0123456789abcdef" if sum(i.startswith(c) for i in ids) > 1)
    with pytest.raises(CaseNotFound, match="ambiguous"):
        queue.complete_id(shared)
    with pytest.raises(CaseNotFound, match="empty"):
        queue.complete_id("")
    with pytest.raises(CaseNotFound, match="no case"):
        queue.complete_id("zz%_")


def test_submitting_the_same_episode_again_returns_the_existing_case(queue: HumanQueue) -> None:
    first = queue.submit(submission())
    again = queue.submit(submission(priority=9))
    assert again == first
    assert queue.counts().total == 1
    assert queue.get(first).priority == 0
    assert queue.submit(submission(run="run2")) != first


def test_submission_validation() -> None:
    with pytest.raises(ValidationError, match="unique"):
        submission(candidates=[{"id": "c0", "text": "a"}, {"id": "c0", "text": "b"}])
    with pytest.raises(ValidationError, match="proposed"):
        submission(proposed="c9")
    with pytest.raises(ValidationError):
        submission(prompt=[])
    with pytest.raises(ValidationError):
        submission(reviewers_required=0)
    with pytest.raises(ValidationError, match="details must be JSON"):
        submission(details={"when": object()})
    with pytest.raises(ValidationError, match="exactly one"):
        Decision(choice="c0", edited_text="x")
    with pytest.raises(ValidationError, match="exactly one"):
        Decision()
    with pytest.raises(ValidationError, match="empty"):
        Decision(edited_text="  ")


def test_get_unknown_case_raises_case_not_found(queue: HumanQueue) -> None:
    with pytest.raises(CaseNotFound, match="nope"):
        queue.get("nope")
    with pytest.raises(CaseNotFound):
        queue.claim("nope", "alice")


def test_list_orders_by_priority_then_age_and_filters(queue: HumanQueue, clock: Clock) -> None:
    ids = {}
    for name, priority, principles, triggers in [
        ("old-low", 0, ["harm"], ["severity"]),
        ("high", 5, ["privacy"], ["disagreement"]),
        ("new-low", 0, ["harm", "privacy"], ["audit"]),
    ]:
        clock.now += 1
        ids[name] = queue.submit(
            submission(name, priority=priority, principles=principles, triggers=triggers)
        )
    assert [c.id for c in queue.list_cases()] == [ids["high"], ids["old-low"], ids["new-low"]]
    assert [c.id for c in queue.list_cases(principle="harm")] == [ids["old-low"], ids["new-low"]]
    assert [c.id for c in queue.list_cases(trigger="audit")] == [ids["new-low"]]
    assert [c.id for c in queue.list_cases(principle="privacy", trigger="disagreement")] == [
        ids["high"]
    ]
    assert [c.id for c in queue.list_cases(limit=1, offset=1)] == [ids["old-low"]]
    assert queue.list_cases(run="other") == []
    assert queue.count_cases(principle="privacy") == 2
    queue.withdraw(ids["high"], "run cancelled")
    assert [c.id for c in queue.list_cases(status="withdrawn")] == [ids["high"]]
    assert len(queue.list_cases(status=["open", "withdrawn"])) == 3
    with pytest.raises(EscalationError, match="unknown case status"):
        queue.list_cases(status="pending")


def test_listing_many_cases_reads_claims_and_decisions_in_chunks(
    queue: HumanQueue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("oversight.escalation.queue._CHUNK", 2)
    ids = [queue.submit(submission(f"e{i}")) for i in range(5)]
    queue.claim(ids[0], "ann")
    queue.claim(ids[4], "bob")
    queue.resolve(ids[4], "bob", Decision(choice="c0"))
    cases = {c.id: c for c in queue.list_cases()}
    assert len(cases) == 5
    assert [lease.reviewer for lease in cases[ids[0]].leases] == ["ann"]
    assert [d.reviewer for d in cases[ids[4]].decisions] == ["bob"]
    assert all(not cases[i].leases and not cases[i].decisions for i in ids[1:4])


def test_claim_lease_expiry_returns_the_case_to_the_pool(queue: HumanQueue, clock: Clock) -> None:
    case_id = queue.submit(submission())
    lease = queue.claim(case_id, "alice")
    assert lease.reviewer == "alice"
    assert (lease.expires_at - lease.claimed_at).total_seconds() == pytest.approx(60)
    assert queue.counts().claimed == 1
    with pytest.raises(LeaseError, match="alice"):
        queue.claim(case_id, "bob")
    assert [c.id for c in queue.list_cases(claimed_by="alice")] == [case_id]
    assert queue.list_cases(claimable_by="bob") == []
    clock.now += 61
    assert queue.get(case_id).leases == ()
    assert queue.counts().claimed == 0
    assert [c.id for c in queue.list_cases(claimable_by="bob")] == [case_id]
    assert queue.claim(case_id, "bob").reviewer == "bob"
    with pytest.raises(LeaseError, match="no claim is held"):
        queue.resolve(case_id, "alice", Decision(choice="c0"))


def test_an_expired_claim_cannot_decide(queue: HumanQueue, clock: Clock) -> None:
    case_id = queue.submit(submission())
    queue.claim(case_id, "alice")
    clock.now += 61
    with pytest.raises(LeaseError, match="expired"):
        queue.resolve(case_id, "alice", Decision(choice="c0"))
    queue.claim(case_id, "alice")
    assert queue.resolve(case_id, "alice", Decision(choice="c0")).case_status == "decided"


def test_claim_again_renews_and_release_gives_it_back(queue: HumanQueue, clock: Clock) -> None:
    case_id = queue.submit(submission())
    queue.claim(case_id, "alice")
    clock.now += 50
    renewed = queue.claim(case_id, "alice", lease_seconds=100)
    assert renewed.expires_at.timestamp() == pytest.approx(clock.now + 100)
    assert queue.release(case_id, "alice") is True
    assert queue.release(case_id, "alice") is False
    assert queue.get(case_id).open_slots == 1
    queue.claim(case_id, "bob")


def test_resolve_requires_an_unexpired_claim(queue: HumanQueue) -> None:
    case_id = queue.submit(submission())
    with pytest.raises(LeaseError, match="claim it first"):
        queue.resolve(case_id, "alice", Decision(choice="c1"))
    queue.claim(case_id, "alice")
    with pytest.raises(EscalationError, match="no candidate 'c7'"):
        queue.resolve(case_id, "alice", Decision(choice="c7"))
    record = queue.resolve(case_id, "alice", Decision(choice="c1", rationale="ok"))
    assert record.case_status == "decided"
    case = queue.get(case_id)
    assert case.status == "decided" and case.decided_at is not None
    assert case.final_decision_id == record.id
    with pytest.raises(LeaseError, match="decided"):
        queue.claim(case_id, "bob")


def test_require_claim_false_claims_implicitly(make_queue: Callable[..., HumanQueue]) -> None:
    with make_queue(require_claim=False) as queue:
        case_id = queue.submit(submission(reviewers_required=1))
        queue.claim(case_id, "alice")
        with pytest.raises(LeaseError, match="every place is taken"):
            queue.resolve(case_id, "bob", Decision(choice="c0"))
        queue.release(case_id, "alice")
        assert queue.resolve(case_id, "bob", Decision(choice="c0")).case_status == "decided"


def test_request_id_applies_once_and_returns_the_same_record(queue: HumanQueue) -> None:
    case_id = queue.submit(submission(reviewers_required=2))
    queue.claim(case_id, "alice")
    first = queue.resolve(case_id, "alice", Decision(choice="c1"), request_id="r-1")
    again = queue.resolve(case_id, "alice", Decision(choice="c1"), request_id="r-1")
    assert again == first
    assert len(queue.get(case_id).decisions) == 1
    with pytest.raises(LeaseError, match="already decided"):
        queue.resolve(case_id, "alice", Decision(choice="c1"), request_id="r-2")
    other = queue.submit(submission("e2"))
    queue.claim(other, "alice")
    with pytest.raises(EscalationError, match="already used"):
        queue.resolve(other, "alice", Decision(choice="c1"), request_id="r-1")


def test_two_reviewers_agree_and_the_case_is_decided(queue: HumanQueue) -> None:
    case_id = queue.submit(submission(reviewers_required=2))
    queue.claim(case_id, "alice")
    queue.claim(case_id, "bob")
    with pytest.raises(LeaseError, match="every place"):
        queue.claim(case_id, "carol")
    assert queue.resolve(case_id, "alice", Decision(choice="c1")).case_status == "open"
    with pytest.raises(LeaseError, match="already decided"):
        queue.claim(case_id, "alice")
    final = queue.resolve(case_id, "bob", Decision(choice="c1", principle_tags=("harm",)))
    assert final.case_status == "decided"
    case = queue.get(case_id)
    decision = queue.final_decision(case)
    assert decision is not None
    assert decision.choice == "c1" and decision.reviewer == "alice"
    assert decision.text == "I can explain how locks work in general."
    assert decision.rejected == ("c0",)
    assert decision.reviewers == ("alice", "bob")
    assert decision.agreement == 1.0
    assert decision.source == "human"
    adjudication = decision.to_adjudication()
    assert (adjudication.case_id, adjudication.choice) == (case_id, "c1")


def test_majority_of_three_decides(queue: HumanQueue) -> None:
    case_id = queue.submit(submission(reviewers_required=3))
    for reviewer, choice in [("a", "c0"), ("b", "c1"), ("c", "c1")]:
        queue.claim(case_id, reviewer)
        queue.resolve(case_id, reviewer, Decision(choice=choice))
    decision = queue.final_decision(case_id)
    assert decision is not None
    assert (decision.choice, decision.reviewer) == ("c1", "b")
    assert decision.agreement == pytest.approx(2 / 3)


def test_disagreement_is_a_tie_broken_by_an_admin(make_queue: Callable[..., HumanQueue]) -> None:
    with make_queue(admins={"root"}) as queue:
        case_id = queue.submit(submission(reviewers_required=2))
        for reviewer, decision in [
            ("alice", Decision(choice="c0")),
            ("bob", Decision(edited_text="A careful answer.")),
        ]:
            queue.claim(case_id, reviewer)
            queue.resolve(case_id, reviewer, decision)
        assert queue.get(case_id).status == "tie"
        assert queue.final_decision(case_id) is None
        assert queue.counts().tie == 1
        with pytest.raises(LeaseError, match="tie"):
            queue.claim(case_id, "carol")
        with pytest.raises(LeaseError, match="admin"):
            queue.resolve(case_id, "bob", Decision(choice="c1"), tie_break=True)
        queue.resolve(case_id, "root", Decision(edited_text="A careful answer."), tie_break=True)
        decision = queue.final_decision(case_id)
        assert decision is not None
        assert decision.tie_break and decision.reviewer == "root"
        assert decision.text == "A careful answer." and decision.choice is None
        assert decision.rejected == ("c0", "c1")
        assert decision.agreement == 0.5
        with pytest.raises(LeaseError, match="decided"):
            queue.resolve(case_id, "root", Decision(choice="c0"), tie_break=True)


def test_withdraw(queue: HumanQueue) -> None:
    case_id = queue.submit(submission())
    queue.claim(case_id, "alice")
    case = queue.withdraw(case_id, "run cancelled")
    assert case.status == "withdrawn" and case.withdrawn_reason == "run cancelled"
    assert case.leases == ()
    assert queue.withdraw(case_id, "again").withdrawn_reason == "run cancelled"
    with pytest.raises(LeaseError, match="withdrawn"):
        queue.resolve(case_id, "alice", Decision(choice="c0"))
    decided = queue.submit(submission("e2"))
    queue.claim(decided, "alice")
    queue.resolve(decided, "alice", Decision(choice="c0"))
    with pytest.raises(EscalationError, match="already decided"):
        queue.withdraw(decided, "too late")


def test_on_change_notifies_until_unsubscribed(queue: HumanQueue) -> None:
    events: list[QueueEvent] = []
    unsubscribe = queue.on_change(events.append)

    def broken(event: QueueEvent) -> None:
        raise RuntimeError("a listener bug must not break the queue")

    queue.on_change(broken)
    case_id = queue.submit(submission())
    queue.claim(case_id, "alice")
    queue.release(case_id, "alice")
    queue.claim(case_id, "alice")
    queue.resolve(case_id, "alice", Decision(choice="c0"))
    assert [(e.kind, e.status, e.reviewer) for e in events] == [
        ("submit", "open", None),
        ("claim", "open", "alice"),
        ("release", "open", "alice"),
        ("claim", "open", "alice"),
        ("decide", "decided", "alice"),
    ]
    unsubscribe()
    queue.submit(submission("e2"))
    assert len(events) == 5


async def test_wait_returns_the_decided_case(queue: HumanQueue) -> None:
    case_id = queue.submit(submission())
    results = []

    async def waiter() -> None:
        results.append(await queue.wait(case_id, poll=0.01))

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.sleep(0.05)
        assert results == []
        await anyio.to_thread.run_sync(queue.claim, case_id, "alice")
        await anyio.to_thread.run_sync(queue.resolve, case_id, "alice", Decision(choice="c1"))
    assert results[0].status == "decided"
    assert final_decision(results[0]) is not None


def test_export_recipe_lists_decided_cases_of_a_run(queue: HumanQueue) -> None:
    decided = queue.submit(submission("e1"))
    queue.submit(submission("e2"))
    queue.submit(submission("e3", run="other"))
    queue.claim(decided, "alice")
    queue.resolve(decided, "alice", Decision(edited_text="Reviewer's answer"))
    rows = [queue.final_decision(c) for c in queue.list_cases(run="run1", status="decided")]
    assert [(r.episode, r.text, r.message_ids) for r in rows if r] == [
        ("e1", "Reviewer's answer", ("m1", "m2"))
    ]


def test_blank_reviewer_name_is_refused(queue: HumanQueue) -> None:
    case_id = queue.submit(submission())
    with pytest.raises(EscalationError, match="reviewer name"):
        queue.claim(case_id, "  ")


async def test_wait_returns_a_withdrawn_case_too(queue: HumanQueue) -> None:
    case_id = queue.submit(submission())
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.to_thread.run_sync, queue.withdraw, case_id, "run cancelled")
        case = await queue.wait(case_id, poll=0.01)
    assert case.status == "withdrawn"
    assert final_decision(case) is None
