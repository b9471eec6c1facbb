"""How :class:`oversight.backends._batching.BatchQueue` forms batches (no timings asserted).

Callers here reach the queue after "work" on the event loop: ``time.sleep`` between checkpoints
keeps the loop busy for longer than a batch window, as a runtime on a loaded machine does while
it brings many episodes to their next model call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable

import anyio
import anyio.lowlevel
import pytest

from oversight.backends._batching import BatchQueue


def _recording_queue(
    seen: list[list[int]], key: object = None, **options: object
) -> BatchQueue[int, int]:
    def run(items: list[int]) -> list[int]:
        seen.append(list(items))
        return [i * 10 for i in items]

    def group(i: int) -> Hashable:
        return i // 100 if key == "stage" else None

    return BatchQueue(run, group_key=group, **options)  # type: ignore[arg-type]


async def _busy(steps: int) -> None:
    """Event-loop work between model calls: ``steps`` x 2 ms holding the loop, then yielding."""
    for _ in range(steps):
        time.sleep(0.002)  # noqa: ASYNC251 - holding the loop is the point
        await anyio.lowlevel.checkpoint()


async def test_callers_that_arrive_while_the_loop_is_busy_share_one_batch() -> None:
    seen: list[list[int]] = []
    queue = _recording_queue(seen, max_batch_size=16, max_wait_s=0.001, max_busy_wait_s=3600)

    async def caller(i: int) -> None:
        await _busy(i)  # the last caller arrives ~16 ms after the first
        assert await queue.submit([i]) == [i * 10]

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(caller, i)
    assert seen == [list(range(8))]


async def test_the_window_rule_splits_the_same_callers() -> None:
    """The contrast: with ``flush="window"`` the oldest request stops waiting after
    ``max_wait_s`` (1 ms), long before the last caller (>= 14 ms of loop work) arrives."""
    seen: list[list[int]] = []
    queue = _recording_queue(seen, max_batch_size=16, max_wait_s=0.001, flush="window")

    async def caller(i: int) -> None:
        await _busy(i)
        await queue.submit([i])

    async with anyio.create_task_group() as tg:
        for i in range(8):
            tg.start_soon(caller, i)
    assert len(seen) > 1
    assert sorted(i for b in seen for i in b) == list(range(8))


async def test_every_stage_of_many_episodes_is_one_batch() -> None:
    """Episodes that draft, score and revise, with uneven loop work before each call: one batch
    per stage, in the same episodes' order every run (what a runtime's stage needs to match a
    hand-batched loop)."""
    runs: list[list[list[int]]] = []
    for _ in range(2):
        seen: list[list[int]] = []
        queue = _recording_queue(seen, key="stage", max_batch_size=32, max_busy_wait_s=3600)

        async def episode(i: int, queue: BatchQueue[int, int] = queue) -> None:
            for stage in range(3):
                await _busy((i * 7 + stage * 3) % 5)
                await queue.submit([stage * 100 + i])

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(episode, i)
        runs.append(seen)
    assert [sorted(b) for b in runs[0]] == [[s * 100 + i for i in range(6)] for s in range(3)]
    assert runs[0] == runs[1]


async def test_a_full_batch_runs_without_waiting_for_the_loop() -> None:
    seen: list[list[int]] = []
    queue = _recording_queue(seen, max_batch_size=3, max_busy_wait_s=3600)

    async def caller(i: int) -> None:
        await _busy(i)
        await queue.submit([i])

    async with anyio.create_task_group() as tg:
        for i in range(7):
            tg.start_soon(caller, i)
    assert [len(b) for b in seen] == [3, 3, 1]


async def test_a_lone_caller_does_not_wait_for_the_busy_cap() -> None:
    seen: list[list[int]] = []
    queue = _recording_queue(seen, max_batch_size=64, max_wait_s=3600, max_busy_wait_s=3600)
    with anyio.fail_after(60):  # a hang guard, not a timing: the caps are an hour
        assert await queue.submit([1]) == [10]
    assert seen == [[1]]


async def test_two_queues_on_one_loop_do_not_hold_each_other() -> None:
    """Leaders of two queues (two backends) both yield while watching the loop; neither counts
    the other as work still to come."""
    seen_a: list[list[int]] = []
    seen_b: list[list[int]] = []
    a = _recording_queue(seen_a, max_wait_s=3600, max_busy_wait_s=3600)
    b = _recording_queue(seen_b, max_wait_s=3600, max_busy_wait_s=3600)
    with anyio.fail_after(60):  # a hang guard: the caps are an hour
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.submit, [1])
            tg.start_soon(b.submit, [2])
    assert (seen_a, seen_b) == ([[1]], [[2]])


async def test_a_caller_waiting_on_a_thread_does_not_hold_the_batch() -> None:
    """A task blocked outside the loop (here a thread that waits until the first batch has
    started) cannot join: the batch runs without it."""
    started = threading.Event()
    seen: list[list[int]] = []

    def run(items: list[int]) -> list[int]:
        seen.append(list(items))
        started.set()
        return items

    queue: BatchQueue[int, int] = BatchQueue(run, max_wait_s=3600, max_busy_wait_s=3600)

    async def late() -> None:
        await anyio.to_thread.run_sync(started.wait, 60)
        await queue.submit([2])

    with anyio.fail_after(60):  # a hang guard
        async with anyio.create_task_group() as tg:
            tg.start_soon(late)
            tg.start_soon(queue.submit, [1])
    assert seen == [[1], [2]]


def test_bad_flush_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="flush"):
        BatchQueue(lambda items: items, flush="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_busy_wait_s"):
        BatchQueue(lambda items: items, max_busy_wait_s=-1)
