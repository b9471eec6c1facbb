"""Gather concurrent model calls from many episodes into batches, without a background task.

Episodes run concurrently and each asks the backend for one or two completions at a time. A
:class:`BatchQueue` collects those requests and runs them together in one blocking call (a model
forward pass) in a worker thread via :func:`anyio.to_thread.run_sync`, so the event loop stays free
while the model works and the next batch fills up meanwhile.

There is no batching task to start or stop: the first caller that finds no batch running becomes
the *leader*. It waits until a batch may run (below), runs it, and keeps leading until its own
requests are answered; then the next waiting caller takes over. Only one batch runs at a time, so
the model is never used from two threads at once.

When a batch runs (``flush``):

``"idle"`` (default)
    when it is full (``max_batch_size``), or as soon as no other task of the event loop is ready
    to run: every task that could still join the batch without waiting for something outside the
    loop (a thread, a socket, a timer) has either submitted or is blocked. Episodes that reach the
    model in the same stage therefore meet in one batch however long the loop takes to bring them
    there (a loaded machine, a busy runtime), so a run forms the same batches every time; a lone
    caller waits for nothing. ``max_busy_wait_s`` only bounds the wait while the loop never rests.
    The loop is watched on asyncio's standard event loop; on any other (trio, uvloop) the
    ``"window"`` rule applies.
``"window"``
    when it is full, or its oldest request has waited ``max_wait_s``.

Requests carry a *group key*: only requests with equal keys share a batch (greedy and sampled
generation, different stop strings, scoring). The oldest request's group goes first.

Cancellation: a caller cancelled before its requests were taken withdraws them; a batch already
running finishes (shielded) and its results are delivered to the other callers in it.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar
from weakref import WeakKeyDictionary

import anyio
import anyio.lowlevel

from ..errors import BackendError, OversightError

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False, slots=True)
class _Entry(Generic[T, R]):
    item: T
    key: Hashable
    arrived: float
    result: R | None = None
    error: BaseException | None = None
    done: bool = False
    taken: bool = False


@dataclass(slots=True)
class BatchStats:
    """Counters for benchmarks and tuning (read them; never assert timings on them)."""

    batches: int = 0
    """Batches run."""
    items: int = 0
    """Requests answered."""
    busy_s: float = 0.0
    """Seconds spent inside the blocking batch function."""
    sizes: list[int] = field(default_factory=list)
    """Size of every batch, in order."""
    seconds: list[float] = field(default_factory=list)
    """Seconds inside the batch function, per batch, in the same order."""
    tokens: int = 0
    """Tokens generated, where the backend counts them (progress displays read it live)."""

    @property
    def mean_batch_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0


_WATCHERS: WeakKeyDictionary[Any, int] = WeakKeyDictionary()
"""asyncio loop -> leaders now yielding in :func:`_loop_settled` on it."""


def _running_asyncio_loop() -> Any | None:
    """The running asyncio loop, when it is one whose ready queue can be read (else ``None``)."""
    import asyncio

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # trio
        return None
    return loop if isinstance(getattr(loop, "_ready", None), deque) else None


async def _loop_settled(loop: Any) -> bool:
    """Yield once; ``True`` when, back, no other task of ``loop`` is ready to run.

    asyncio's loop runs the callbacks in ``loop._ready``; a task that is not blocked has one
    there. Other leaders yielding here (one queue per backend) always have one too, so they are
    discounted: two queues watching the same loop do not keep each other busy.
    """
    _WATCHERS[loop] = _WATCHERS.get(loop, 0) + 1
    try:
        await anyio.lowlevel.checkpoint()
        return len(loop._ready) <= _WATCHERS[loop] - 1
    finally:
        _WATCHERS[loop] -= 1


class BatchQueue(Generic[T, R]):
    """Run ``run_batch(items) -> results`` (blocking, same order) on gathered concurrent calls."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int = 16,
        max_wait_s: float = 0.005,
        group_key: Callable[[T], Hashable] = lambda _item: None,
        name: str = "model",
        flush: Literal["idle", "window"] = "idle",
        max_busy_wait_s: float = 1.0,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        if flush not in ("idle", "window"):
            raise ValueError(f"flush must be 'idle' or 'window', got {flush!r}")
        if max_busy_wait_s < 0:
            raise ValueError(f"max_busy_wait_s must be >= 0, got {max_busy_wait_s}")
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        """``"window"`` (and ``"idle"`` where the loop cannot be watched): the longest the
        oldest request waits for others."""
        self.flush = flush
        self.max_busy_wait_s = max_busy_wait_s
        """``"idle"``: the longest the oldest request waits while the loop never rests."""
        self._group_key = group_key
        self._name = name
        self._pending: deque[_Entry[T, R]] = deque()
        self._leading = False
        self._arrived = anyio.Event()
        self._progress = anyio.Event()
        self.stats = BatchStats()

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Queue ``items``, wait until they are answered, return their results in order."""
        if not items:
            return []
        now = anyio.current_time()
        entries = [_Entry[T, R](item, self._group_key(item), now) for item in items]
        self._pending.extend(entries)
        self._arrived.set()
        try:
            while not all(e.done for e in entries):
                if not self._leading:
                    await self._lead(entries)
                else:
                    progress = self._progress
                    await progress.wait()
        except BaseException:
            for e in entries:
                if not e.taken:
                    with contextlib.suppress(ValueError):
                        self._pending.remove(e)
            raise
        for e in entries:
            if e.error is not None:
                if isinstance(e.error, OversightError):
                    raise e.error
                raise BackendError(
                    f"{self._name}: batch failed with {type(e.error).__name__}: {e.error}"
                ) from e.error
        return [e.result for e in entries]  # type: ignore[misc]

    def _notify(self) -> None:
        self._progress.set()
        self._progress = anyio.Event()

    async def _lead(self, mine: list[_Entry[T, R]]) -> None:
        self._leading = True
        try:
            while self._pending and not all(e.done for e in mine):
                batch = await self._gather()
                if batch:
                    await self._run(batch)
        finally:
            self._leading = False
            self._notify()

    def _group(self) -> list[_Entry[T, R]]:
        key = self._pending[0].key
        return [e for e in self._pending if e.key == key][: self.max_batch_size]

    async def _gather(self) -> list[_Entry[T, R]]:
        """Wait until the oldest group may run (see the module's ``flush`` rules); take it."""
        loop = _running_asyncio_loop() if self.flush == "idle" else None
        while self._pending:
            group = self._group()
            if len(group) >= self.max_batch_size:
                break
            waited = anyio.current_time() - group[0].arrived
            if loop is not None:
                if waited >= self.max_busy_wait_s or await _loop_settled(loop):
                    break
                continue
            remaining = self.max_wait_s - waited
            if remaining <= 0:
                break
            self._arrived = anyio.Event()
            with anyio.move_on_after(remaining):
                await self._arrived.wait()
        if not self._pending:
            return []
        batch = self._group()
        for e in batch:
            e.taken = True
            self._pending.remove(e)
        return batch

    async def _run(self, batch: list[_Entry[T, R]]) -> None:
        items = [e.item for e in batch]
        start = anyio.current_time()
        with anyio.CancelScope(shield=True):
            try:
                results = await anyio.to_thread.run_sync(self._run_batch, items)
                if len(results) != len(items):
                    raise BackendError(
                        f"{self._name}: batch returned {len(results)} results for "
                        f"{len(items)} requests"
                    )
            except Exception as exc:
                for e in batch:
                    e.error = exc
            else:
                for e, r in zip(batch, results, strict=True):
                    e.result = r
            for e in batch:
                e.done = True
            self.stats.batches += 1
            self.stats.items += len(batch)
            took = anyio.current_time() - start
            self.stats.busy_s += took
            self.stats.sizes.append(len(batch))
            self.stats.seconds.append(took)
            self._notify()
