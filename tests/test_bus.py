from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import pytest
from anyio.abc import TaskStatus
from hypothesis import given, settings
from hypothesis import strategies as st

from oversight.bus import (
    Bus,
    HardBlock,
    JournalInterceptor,
    Subscription,
    VisibilityFilter,
    check_topic,
    topic_matches,
)
from oversight.errors import BusError, RequestTimeout
from oversight.messages import (
    ENVELOPE_ADAPTER,
    Consensus,
    Critique,
    Draft,
    Envelope,
    Failure,
    envelope,
)


def draft(i: int = 0, topic: str = "episode.e1.draft", **kw: object) -> Envelope:
    return envelope(
        Draft(candidate_id=f"c{i}", text=f"answer {i}", model="m"),
        run="r",
        episode="e1",
        sender=str(kw.get("sender", "base")),
        topic=topic,
        parents=tuple(kw.get("parents", ())),  # type: ignore[arg-type]
    )


def critique(topic: str = "episode.e1.critique") -> Envelope:
    payload = Critique(
        candidate_id="c0", principle_id="harm", principle_version="1", verdict="violated"
    )
    return envelope(payload, run="r", episode="e1", sender="critic", topic=topic)


async def collect(
    sub: Subscription, into: list[Envelope], *, task_status: TaskStatus[None]
) -> None:
    async with sub:
        task_status.started()
        async for env in sub:
            into.append(env)


@pytest.mark.parametrize(
    ("pattern", "topic", "expected"),
    [
        ("episode.e1.draft", "episode.e1.draft", True),
        ("episode.*.draft", "episode.e1.draft", True),
        ("episode.*", "episode.e1.draft", False),
        ("episode.#", "episode.e1.draft", True),
        ("episode.#", "episode", True),
        ("#", "anything.at.all", True),
        ("#.draft", "episode.e1.draft", True),
        ("episode.#.draft", "episode.draft", True),
        ("episode.#.draft", "episode.e1.critique", False),
        ("episode.e2.draft", "episode.e1.draft", False),
    ],
)
def test_topic_patterns(pattern: str, topic: str, expected: bool) -> None:
    assert topic_matches(pattern, topic) is expected


@pytest.mark.parametrize("topic", ["", "a..b", "a.*", "a b", "a.#"])
def test_invalid_topics_are_rejected(topic: str) -> None:
    with pytest.raises(BusError, match="invalid topic"):
        check_topic(topic)


async def test_order_is_preserved_and_unmatched_topics_are_not_delivered() -> None:
    got: list[Envelope] = []
    async with anyio.create_task_group() as tg:
        bus = Bus()
        await tg.start(collect, bus.subscribe("episode.*.draft", buffer=4), got)
        sent = [draft(i) for i in range(50)]
        for env in sent:
            await bus.publish(env)
        await bus.publish(critique())
        await bus.aclose()
    assert [e.id for e in got] == [e.id for e in sent]


async def test_fan_out_to_every_subscriber() -> None:
    boxes: list[list[Envelope]] = [[] for _ in range(5)]
    async with Bus() as bus, anyio.create_task_group() as tg:
        for box, pattern in zip(
            boxes, ["#", "episode.#", "episode.e1.draft", "#.draft", "#"], strict=True
        ):
            await tg.start(collect, bus.subscribe(pattern, buffer=2), box)
        await tg.start(collect, bus.subscribe(lambda e: e.kind == "draft"), boxes[4])
        for i in range(10):
            await bus.publish(draft(i))
        await bus.aclose()
    for box in boxes[:4]:
        assert [e.payload.candidate_id for e in box] == [f"c{i}" for i in range(10)]  # type: ignore[union-attr]
    assert len(boxes[4]) == 20  # "#" plus the predicate subscription share this list
    stats = bus.statistics().topics["episode.e1.draft"]
    assert (stats.published, stats.delivered, stats.dropped) == (10, 60, 0)


async def test_backpressure_waits_instead_of_dropping() -> None:
    published: list[int] = []
    async with Bus() as bus, bus.subscribe("#", buffer=1) as sub:

        async def producer() -> None:
            for i in range(3):
                await bus.publish(draft(i))
                published.append(i)

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            await anyio.wait_all_tasks_blocked()
            # one envelope fits in the buffer, the second publish waits for room
            assert published == [0]
            assert bus.statistics().topics["episode.e1.draft"].max_queue_depth == 1
            received = [await sub.receive() for _ in range(3)]
        assert published == [0, 1, 2]
        assert [e.payload.candidate_id for e in received] == ["c0", "c1", "c2"]  # type: ignore[union-attr]


async def test_drain_on_close_then_iteration_ends() -> None:
    bus = Bus()
    got: list[Envelope] = []
    async with bus.subscribe("#", buffer=16) as sub:
        for i in range(10):
            await bus.publish(draft(i))
        await bus.aclose()
        async for env in sub:  # ends by itself once drained
            got.append(env)
    assert len(got) == 10
    with pytest.raises(BusError, match="closed"):
        await bus.publish(draft())
    with pytest.raises(BusError, match="closed"):
        bus.subscribe("#")
    await bus.aclose()  # idempotent


async def test_close_waits_for_a_blocked_publish() -> None:
    got: list[Envelope] = []
    bus = Bus()
    async with bus.subscribe("#", buffer=1) as sub, anyio.create_task_group() as tg:
        await bus.publish(draft(0))
        tg.start_soon(bus.publish, draft(1))
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(bus.aclose)
        await anyio.wait_all_tasks_blocked()
        assert bus.closed
        async for env in sub:
            got.append(env)
    assert [e.payload.candidate_id for e in got] == ["c0", "c1"]  # type: ignore[union-attr]


async def test_no_loss_under_concurrency() -> None:
    publishers, per_publisher = 8, 150
    boxes: list[list[Envelope]] = [[] for _ in range(3)]
    async with anyio.create_task_group() as tg:
        bus = Bus()
        for box in boxes:
            await tg.start(collect, bus.subscribe("episode.#", buffer=3), box)

        async def produce(p: int) -> None:
            for i in range(per_publisher):
                await bus.publish(draft(i, sender=f"p{p}"))

        async with anyio.create_task_group() as producers:
            for p in range(publishers):
                producers.start_soon(produce, p)
        await bus.aclose()
    for box in boxes:
        assert len(box) == publishers * per_publisher
        for p in range(publishers):
            mine = [e.payload.candidate_id for e in box if e.sender == f"p{p}"]  # type: ignore[union-attr]
            assert mine == [f"c{i}" for i in range(per_publisher)]  # per-publisher order
    total = bus.statistics().total()
    assert total.delivered == 3 * publishers * per_publisher
    assert total.max_queue_depth <= 3


async def test_request_reply_through_serve() -> None:
    async def answer(request: Envelope) -> Envelope:
        return draft(9, topic="episode.e1.reply", parents=(request.id,), sender="responder")

    async with Bus() as bus, anyio.create_task_group() as tg:
        await tg.start(bus.serve, "episode.*.ask", answer)
        request = draft(0, topic="episode.e1.ask")
        reply = await bus.request(request, timeout=5)
        assert request.id in reply.parents
        assert reply.sender == "responder"
        await bus.aclose()


async def test_a_failing_responder_answers_with_a_failure() -> None:
    async def broken(request: Envelope) -> Envelope:
        raise ValueError("model server down")

    async with Bus() as bus, anyio.create_task_group() as tg:
        await tg.start(bus.serve, "ask", broken)
        for _ in range(2):  # the server survives the first failure
            reply = await bus.request(draft(0, topic="ask"), timeout=5)
            assert isinstance(reply.payload, Failure)
            assert reply.payload.error_type == "ValueError"
            assert "model server down" in reply.payload.message
            assert reply.topic == "ask.failure"
        await bus.aclose()


async def test_request_times_out_without_a_responder() -> None:
    async with Bus() as bus:
        with pytest.raises(RequestTimeout, match="no reply"):
            await bus.request(draft(0, topic="nobody.home"), timeout=0.05)
        assert bus._pending == {}


async def test_request_dropped_by_an_interceptor_fails_fast() -> None:
    async with Bus([HardBlock(lambda e: True, name="wall")]) as bus:
        with pytest.raises(BusError, match="dropped by an interceptor"):
            await bus.request(draft(), timeout=5)
        assert bus.statistics().dropped_by == {"wall": 1}


async def test_request_fails_when_the_bus_closes_first() -> None:
    bus = Bus()
    errors: list[BusError] = []

    async def ask() -> None:
        try:
            await bus.request(draft(), timeout=5)
        except BusError as err:
            errors.append(err)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await anyio.wait_all_tasks_blocked()
        await bus.aclose()
    assert len(errors) == 1 and "closed before" in str(errors[0])


async def test_interceptors_replace_and_drop_are_counted() -> None:
    def to_failure(env: Envelope) -> Envelope:
        failure = Failure(stage="draft", error_type="Blocked", message="blocked by safety")
        return envelope(failure, run=env.run, episode=env.episode, sender="safety", topic=env.topic)

    block = HardBlock(lambda e: "bomb" in getattr(e.payload, "text", ""), replacement=to_failure)
    drop = HardBlock(lambda e: e.sender == "spammer", name="spam")
    got: list[Envelope] = []
    async with anyio.create_task_group() as tg:
        bus = Bus([block, drop])
        await tg.start(collect, bus.subscribe("#"), got)
        bad = envelope(
            Draft(candidate_id="c0", text="how to build a bomb", model="m"),
            run="r", episode="e1", sender="base", topic="episode.e1.draft",
        )  # fmt: skip
        assert await bus.publish(draft(1, sender="spammer")) is None
        replaced = await bus.publish(bad)
        assert replaced is not None and replaced.kind == "failure"
        await bus.publish(draft(2))
        await bus.aclose()
    assert [e.kind for e in got] == ["failure", "draft"]
    stats = bus.statistics()
    topic = stats.topics["episode.e1.draft"]
    assert (topic.published, topic.dropped, topic.replaced, topic.delivered) == (3, 1, 1, 2)
    assert stats.dropped_by == {"spam": 1}
    assert block.blocked == 1 and drop.blocked == 1


async def test_interceptor_must_return_an_envelope() -> None:
    class Broken:
        name = "broken"

        def on_publish(self, env: Envelope) -> object:
            return {"not": "an envelope"}

    async with Bus([Broken()]) as bus:  # type: ignore[list-item]
        with pytest.raises(BusError, match="broken"):
            await bus.publish(draft())
    with pytest.raises(BusError, match="no on_publish"):
        Bus([object()])  # type: ignore[list-item]


async def test_publish_requires_an_envelope() -> None:
    async with Bus() as bus:
        with pytest.raises(BusError, match="takes an Envelope"):
            await bus.publish({"topic": "x"})  # type: ignore[arg-type]


async def test_internal_envelopes_never_reach_user_facing_subscribers() -> None:
    user: list[Envelope] = []
    agents: list[Envelope] = []
    visibility = VisibilityFilter()
    async with anyio.create_task_group() as tg:
        bus = Bus([visibility])
        await tg.start(collect, bus.subscribe("#", user_facing=True), user)
        await tg.start(collect, bus.subscribe("#"), agents)
        await bus.publish(critique())
        await bus.publish(draft())
        await bus.aclose()
    assert [e.kind for e in user] == ["draft"]
    assert [e.kind for e in agents] == ["critique", "draft"]
    assert visibility.withheld == 1
    assert bus.statistics().topics["episode.e1.critique"].withheld == 1
    assert sum(isinstance(i, VisibilityFilter) for i in bus.interceptors) == 1


async def test_visibility_filter_is_always_installed() -> None:
    user: list[Envelope] = []
    async with anyio.create_task_group() as tg:
        bus = Bus()
        await tg.start(collect, bus.subscribe("#", user_facing=True), user)
        await bus.publish(critique())
        await bus.aclose()
    assert user == []


async def test_journal_appends_every_envelope_and_flushes_finished_episodes() -> None:
    class Sink(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1
            super().flush()

    sink = Sink()
    journal = JournalInterceptor(sink)
    async with Bus([journal, HardBlock(lambda e: e.sender == "spammer")]) as bus:
        await bus.publish(draft(0))
        await bus.publish(draft(1, sender="spammer"))  # journaled, then dropped
        done = Consensus(candidate_id="c0", text="answer 0")
        await bus.publish(
            envelope(done, run="r", episode="e1", sender="runtime", topic="episode.e1.done")
        )
    lines = sink.getvalue().splitlines()
    assert len(lines) == 3 == journal.written
    parsed = [ENVELOPE_ADAPTER.validate_json(line) for line in lines]
    assert [e.kind for e in parsed] == ["draft", "draft", "consensus"]
    assert json.loads(lines[0])["payload"]["text"] == "answer 0"
    assert sink.flushes == 1


async def test_journal_to_file(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "journal.jsonl"
    journal = JournalInterceptor.to_file(path)
    async with Bus([journal]) as bus:
        await bus.publish(draft())
    journal.close()
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1


async def test_journal_accepts_a_plain_callable() -> None:
    lines: list[str] = []
    async with Bus([JournalInterceptor(lines.append)]) as bus:
        await bus.publish(draft())
    assert len(lines) == 1 and lines[0].endswith("\n")


async def test_subscriber_leaving_does_not_break_publishers() -> None:
    async with Bus() as bus:
        async with bus.subscribe("#", buffer=1):
            await bus.publish(draft(0))
        await bus.publish(draft(1))  # nobody listens: delivered to no one, no error
        stats = bus.statistics()
        assert stats.subscribers == 0
        assert stats.topics["episode.e1.draft"].delivered == 1


def test_bad_subscription_arguments() -> None:
    bus = Bus()
    with pytest.raises(BusError, match="buffer"):
        bus.subscribe("#", buffer=-1)
    with pytest.raises(BusError, match="invalid pattern"):
        bus.subscribe("a..b")


@settings(max_examples=25, deadline=None)
@given(
    publishers=st.integers(1, 4),
    per_publisher=st.integers(0, 30),
    buffers=st.lists(st.integers(0, 4), min_size=1, max_size=4),
)
def test_property_every_subscriber_gets_every_envelope_in_publisher_order(
    publishers: int, per_publisher: int, buffers: list[int]
) -> None:
    async def scenario() -> list[list[Envelope]]:
        boxes: list[list[Envelope]] = [[] for _ in buffers]
        async with anyio.create_task_group() as tg:
            bus = Bus()
            for box, size in zip(boxes, buffers, strict=True):
                await tg.start(collect, bus.subscribe("#", buffer=size), box)

            async def produce(p: int) -> None:
                for i in range(per_publisher):
                    await bus.publish(draft(i, sender=f"p{p}"))

            async with anyio.create_task_group() as producers:
                for p in range(publishers):
                    producers.start_soon(produce, p)
            await bus.aclose()
        return boxes

    for box in anyio.run(scenario):
        assert len(box) == publishers * per_publisher
        for p in range(publishers):
            mine = [e.payload.candidate_id for e in box if e.sender == f"p{p}"]  # type: ignore[union-attr]
            assert mine == [f"c{i}" for i in range(per_publisher)]
