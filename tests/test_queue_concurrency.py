"""Races between reviewers, with real threads, against SQLite and the real PostgreSQL server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from oversight.errors import LeaseError
from oversight.escalation import CaseSubmission, Decision, HumanQueue


def submission(episode: str, reviewers_required: int = 1) -> CaseSubmission:
    return CaseSubmission(
        run="race",
        episode=episode,
        prompt=[{"role": "user", "content": "q"}],
        candidates=[{"id": "c0", "text": "a"}, {"id": "c1", "text": "b"}],
        reviewers_required=reviewers_required,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Opens queues on one database: a SQLite file, or unique tables in PostgreSQL."""
    if request.param == "sqlite":
        url, prefix = f"sqlite:///{tmp_path / 'queue.db'}", "queue_"
    else:
        url = request.getfixturevalue("postgres_url")
        prefix = f"t{uuid.uuid4().hex[:10]}_"
    opened: list[HumanQueue] = []

    def make(**options: Any) -> HumanQueue:
        queue = HumanQueue(url, table_prefix=prefix, **options)
        opened.append(queue)
        return queue

    yield make
    if request.param == "postgres":
        opened[0].store.drop_all()
    for queue in opened:
        queue.close()


def race(n: int, action: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Run ``action(i)`` in ``n`` threads released at the same moment."""
    barrier = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        try:
            value = action(i)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                results.append(value)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@pytest.mark.parametrize("required", [1, 2])
def test_reviewers_racing_for_the_last_places_exactly_k_win(
    make_queue: Callable[..., HumanQueue], required: int
) -> None:
    queue = make_queue()
    for round_ in range(3):
        case_id = queue.submit(submission(f"e{round_}", required))
        wins, errors = race(6, lambda i, c=case_id: queue.claim(c, f"reviewer-{i}"))
        assert len(wins) == required
        assert len(errors) == 6 - required
        assert all(isinstance(e, LeaseError) for e in errors), errors
        assert sorted(lease.reviewer for lease in queue.get(case_id).leases) == sorted(
            lease.reviewer for lease in wins
        )


def test_racing_implicit_decisions_apply_exactly_one(
    make_queue: Callable[..., HumanQueue],
) -> None:
    queue = make_queue(require_claim=False)
    for round_ in range(3):
        case_id = queue.submit(submission(f"e{round_}", 1))
        wins, errors = race(
            5, lambda i, c=case_id: queue.resolve(c, f"r{i}", Decision(choice=f"c{i % 2}"))
        )
        assert len(wins) == 1 and wins[0].case_status == "decided"
        assert all(isinstance(e, LeaseError) for e in errors), errors
        case = queue.get(case_id)
        assert len(case.decisions) == 1
        assert case.final_decision_id == wins[0].id


def test_the_kth_decision_decides_when_reviewers_decide_at_once(
    make_queue: Callable[..., HumanQueue],
) -> None:
    queue = make_queue()
    case_id = queue.submit(submission("e", 3))
    for i in range(3):
        queue.claim(case_id, f"r{i}")
    wins, errors = race(3, lambda i: queue.resolve(case_id, f"r{i}", Decision(choice="c1")))
    assert errors == []
    assert sorted(r.case_status for r in wins) == ["decided", "open", "open"]
    assert queue.get(case_id).status == "decided"


def test_a_retried_request_racing_itself_applies_once(
    make_queue: Callable[..., HumanQueue],
) -> None:
    queue = make_queue()
    case_id = queue.submit(submission("e", 2))
    queue.claim(case_id, "alice")
    wins, errors = race(
        4, lambda i: queue.resolve(case_id, "alice", Decision(choice="c0"), request_id="req-1")
    )
    assert errors == []
    assert len({r.id for r in wins}) == 1
    assert len(queue.get(case_id).decisions) == 1


def test_two_queue_objects_on_one_database_see_each_other(
    make_queue: Callable[..., HumanQueue],
) -> None:
    first, second = make_queue(), make_queue()
    case_id = first.submit(submission("e"))
    assert second.submit(submission("e")) == case_id
    second.claim(case_id, "bob")
    with pytest.raises(LeaseError):
        first.claim(case_id, "alice")
    second.resolve(case_id, "bob", Decision(choice="c1"))
    assert first.get(case_id).status == "decided"
