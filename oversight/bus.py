"""The message bus: typed envelopes, topics, request/reply and interceptors on anyio streams.

Every subscriber gets **its own bounded memory object stream** (an anyio stream hands each item
to one receiver only, so sharing one between subscribers would silently lose messages). A
publisher that finds a subscriber's buffer full waits for room: backpressure, never a drop.

::

    async with Bus(interceptors=[JournalInterceptor.to_file("run.jsonl")]) as bus:
        async with bus.subscribe("episode.*.draft", buffer=64) as drafts:
            await bus.publish(env)
            async for env in drafts:
                ...

Topics are dot-separated words (``episode.3f2a.draft``). A subscription pattern matches a topic
word by word: ``*`` matches exactly one word, ``#`` any number of words (zero included), so
``episode.#`` sees everything under ``episode`` and ``#`` sees everything. A pattern may also be
a predicate ``Callable[[Envelope], bool]``.

Interceptors see every envelope before delivery, in order, and may pass it, replace it or drop
it (``on_publish(env) -> env | None``). A drop is counted in :meth:`Bus.statistics`, never
silent. Three ship here: :class:`JournalInterceptor` (appends every envelope as a JSON line),
:class:`VisibilityFilter` (internal reasoning never reaches a user-facing subscriber; always
installed) and :class:`HardBlock` (drop or replace envelopes matching a predicate).

Shutdown: :meth:`Bus.aclose` (or leaving ``async with``) waits for publishes in flight, then
closes every subscriber's send side; subscribers drain what was published and their loops end.
Publishing after that raises :class:`~oversight.errors.BusError`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self, runtime_checkable

import anyio
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .errors import BusError, JournalError, RequestTimeout
from .messages import TRANSPORT_KINDS, Envelope, Failure, envelope

TopicPattern = str | Callable[[Envelope], bool]
"""A topic pattern (``episode.*.draft``, ``episode.#``) or a predicate over envelopes."""

_WORD = re.compile(r"^[^.*#\s]+$")
_ROUTE_CACHE_LIMIT = 4096
_UNANSWERABLE = (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError)


# --------------------------------------------------------------------------- topics


def topic_matches(pattern: str, topic: str) -> bool:
    """Whether ``topic`` matches ``pattern`` (``*``: one word, ``#``: any number of words)."""
    return _match(pattern.split("."), topic.split("."))


def _match(pattern: list[str], words: list[str]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def check_topic(topic: str, *, pattern: bool = False) -> str:
    """Validate a topic (or a pattern when ``pattern``); BusError naming the problem."""
    words = topic.split(".")
    for word in words:
        if pattern and word in ("*", "#"):
            continue
        if not _WORD.match(word):
            kind = "pattern" if pattern else "topic"
            allowed = "words, '*' or '#'" if pattern else "words (no '*', '#' or spaces)"
            raise BusError(
                f"invalid {kind} {topic!r}: parts between dots must be {allowed}, got {word!r}"
            )
    return topic


# --------------------------------------------------------------------------- statistics


@dataclass
class TopicStats:
    """Counters of one topic (runtime state; a copy is returned by :meth:`Bus.statistics`)."""

    published: int = 0
    """Envelopes published on this topic (before interceptors)."""
    delivered: int = 0
    """Envelope copies put into subscribers' buffers (one per matching subscriber)."""
    dropped: int = 0
    """Envelopes an interceptor dropped."""
    replaced: int = 0
    """Envelopes an interceptor replaced by another."""
    withheld: int = 0
    """Deliveries withheld from a subscriber by a delivery filter (e.g. visibility)."""
    max_queue_depth: int = 0
    """Largest number of envelopes waiting in one subscriber's buffer right after a delivery."""


@dataclass
class BusStatistics:
    """A snapshot of the bus counters."""

    topics: dict[str, TopicStats] = field(default_factory=dict)
    """Counters per topic."""
    dropped_by: dict[str, int] = field(default_factory=dict)
    """Drops per interceptor name."""
    subscribers: int = 0
    """Subscriptions open now."""

    def total(self) -> TopicStats:
        """Counters summed over topics (``max_queue_depth``: the maximum)."""
        out = TopicStats()
        for s in self.topics.values():
            out.published += s.published
            out.delivered += s.delivered
            out.dropped += s.dropped
            out.replaced += s.replaced
            out.withheld += s.withheld
            out.max_queue_depth = max(out.max_queue_depth, s.max_queue_depth)
        return out


# --------------------------------------------------------------------------- interceptors


@runtime_checkable
class Interceptor(Protocol):
    """Sees every published envelope before delivery.

    ``on_publish`` returns the envelope (pass), another envelope (replace) or None (drop). An
    interceptor may also define ``on_deliver(envelope, subscription) -> bool`` to withhold a
    delivery from one subscriber.
    """

    name: str

    def on_publish(self, envelope: Envelope) -> Envelope | None: ...


class JournalInterceptor:
    """Appends every envelope it sees to a sink as one JSON line (serialised once).

    ``sink`` is a callable taking the line (``list.append``, ``file.write``) or an object with
    ``write``. When the sink has ``flush``, it is called after envelopes of ``flush_kinds`` (the
    kinds that finish an episode), so a journal is flushed at least once per finished episode.
    Envelopes of ``skip_kinds`` are passed on unwritten (by default the requests to agent
    services and their replies: transport, whose messages are journaled when the agent
    publishes them). Place it first to journal even what later interceptors drop.
    """

    name = "journal"

    def __init__(
        self,
        sink: Callable[[str], object] | IO[str],
        *,
        flush_kinds: frozenset[str] = frozenset(
            {"consensus", "escalation", "adjudication", "failure"}
        ),
        skip_kinds: frozenset[str] = TRANSPORT_KINDS,
    ) -> None:
        write = getattr(sink, "write", None)
        self._write: Callable[[str], object] = write if callable(write) else sink  # type: ignore[assignment]
        flush = getattr(sink, "flush", None)
        self._flush: Callable[[], object] | None = flush if callable(flush) else None
        self._flush_kinds = flush_kinds
        self._skip_kinds = skip_kinds
        self._owned: IO[str] | None = None
        self.written = 0
        """Envelopes written so far."""

    @classmethod
    def to_file(cls, path: str | Path, **kwargs: Any) -> JournalInterceptor:
        """A journal appending to ``path`` (created with its folder); close it with
        :meth:`close`."""
        target = Path(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            handle = target.open("a", encoding="utf-8")
        except OSError as err:
            raise JournalError(f"{target}: cannot open the journal for appending: {err}") from None
        journal = cls(handle, **kwargs)
        journal._owned = handle
        return journal

    def on_publish(self, envelope: Envelope) -> Envelope:
        if envelope.payload.kind in self._skip_kinds:
            return envelope
        self._write(envelope.model_dump_json() + "\n")
        self.written += 1
        if self._flush is not None and envelope.payload.kind in self._flush_kinds:
            self._flush()
        return envelope

    def flush(self) -> None:
        """Flush the sink when it can be flushed."""
        if self._flush is not None:
            self._flush()

    def close(self) -> None:
        """Flush, and close the file when :meth:`to_file` opened it."""
        self.flush()
        if self._owned is not None:
            self._owned.close()
            self._owned = None


class VisibilityFilter:
    """Internal envelopes (critiques, safety analyses, judgments...) are never delivered to a
    subscription opened with ``user_facing=True``. The bus always installs one."""

    name = "visibility"

    def __init__(self) -> None:
        self.withheld = 0
        """Deliveries withheld so far."""

    def on_publish(self, envelope: Envelope) -> Envelope:
        return envelope

    def on_deliver(self, envelope: Envelope, subscription: Subscription) -> bool:
        if subscription.user_facing and envelope.visibility == "internal":
            self.withheld += 1
            return False
        return True


class HardBlock:
    """Drop, or replace, every envelope matching ``predicate`` (e.g. a draft safety blocked).

    With ``replacement`` the envelope is swapped for ``replacement(envelope)`` (for instance a
    refusal or a :class:`~oversight.messages.Failure`); without, it is dropped. Either way it is
    counted (``blocked`` here, ``dropped`` / ``replaced`` in the bus statistics).
    """

    def __init__(
        self,
        predicate: Callable[[Envelope], bool],
        *,
        replacement: Callable[[Envelope], Envelope] | None = None,
        name: str = "hard-block",
    ) -> None:
        self.predicate = predicate
        self.replacement = replacement
        self.name = name
        self.blocked = 0
        """Envelopes matched so far."""

    def on_publish(self, envelope: Envelope) -> Envelope | None:
        if not self.predicate(envelope):
            return envelope
        self.blocked += 1
        return None if self.replacement is None else self.replacement(envelope)


# --------------------------------------------------------------------------- subscriptions


class Subscription:
    """One subscriber's bounded stream. Use as ``async with bus.subscribe(...) as sub:`` and
    iterate ``async for env in sub`` (ends when the bus closes and the buffer is drained)."""

    def __init__(
        self, bus: Bus, pattern: TopicPattern, buffer: int, user_facing: bool, name: str
    ) -> None:
        if isinstance(pattern, str):
            check_topic(pattern, pattern=True)
        elif not callable(pattern):
            raise BusError(f"subscription {name!r}: pattern must be a topic string or a callable")
        if buffer < 0:
            raise BusError(f"subscription {name!r}: buffer must be >= 0, got {buffer}")
        self.bus = bus
        self.pattern = pattern
        """The topic pattern or predicate."""
        self.buffer = buffer
        """Capacity of the stream; a publisher waits when it is full."""
        self.user_facing = user_facing
        """When True, internal envelopes are never delivered here."""
        self.name = name
        """A name for statistics and errors."""
        self._send: MemoryObjectSendStream[Envelope]
        self._receive: MemoryObjectReceiveStream[Envelope]
        self._send, self._receive = anyio.create_memory_object_stream[Envelope](buffer)
        # anyio's statistics() builds a dataclass per call (~1 us, x subscribers x messages);
        # the buffer's length is the same number at a tenth of the cost.
        state = getattr(self._send, "_state", None)
        self._queue: Sequence[object] | None = getattr(state, "buffer", None)
        self._entered = False

    def matches(self, envelope: Envelope) -> bool:
        """Whether this subscription wants the envelope."""
        if isinstance(self.pattern, str):
            return topic_matches(self.pattern, envelope.topic)
        return bool(self.pattern(envelope))

    def depth(self) -> int:
        """Envelopes waiting in the buffer now."""
        if self._queue is not None:
            return len(self._queue)
        return self._send.statistics().current_buffer_used

    async def receive(self) -> Envelope:
        """The next envelope; :class:`anyio.EndOfStream` once the bus closed and all is read."""
        return await self._receive.receive()

    def __aiter__(self) -> AsyncIterator[Envelope]:
        return self._receive.__aiter__()

    async def __aenter__(self) -> Self:
        if self._entered:
            raise BusError(f"subscription {self.name!r} was already entered; subscribe again")
        self._entered = True
        self.bus._attach(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bus._detach(self)
        self._receive.close()
        self._send.close()

    def __repr__(self) -> str:
        return f"Subscription({self.name!r}, {self.pattern!r}, buffer={self.buffer})"


# --------------------------------------------------------------------------- the bus


class Bus:
    """Async publish/subscribe and request/reply over per-subscriber bounded streams."""

    def __init__(
        self,
        interceptors: Sequence[Interceptor] = (),
        *,
        buffer: int = 64,
        name: str = "bus",
    ) -> None:
        self.name = name
        self.default_buffer = buffer
        """Buffer of subscriptions that do not choose one."""
        self._interceptors: list[Interceptor] = []
        self._hooks: list[Interceptor] = []
        self._deliver_filters: list[Callable[[Envelope, Subscription], bool]] = []
        self._subs: list[Subscription] = []
        self._routes: dict[str, list[Subscription]] = {}
        self._predicates: list[Subscription] = []
        self._stats: dict[str, TopicStats] = {}
        self._dropped_by: dict[str, int] = {}
        self._pending: dict[str, MemoryObjectSendStream[Envelope]] = {}
        self._closed = False
        self._inflight = 0
        self._idle: anyio.Event | None = None
        self._counter = 0
        self._visibility: VisibilityFilter | None = None
        for interceptor in interceptors:
            self.add_interceptor(interceptor)
        if not any(isinstance(i, VisibilityFilter) for i in self._interceptors):
            self.add_interceptor(VisibilityFilter())

    # ------------------------------------------------------------ configuration

    def add_interceptor(self, interceptor: Interceptor) -> None:
        """Append an interceptor (they run in the order added)."""
        if not callable(getattr(interceptor, "on_publish", None)):
            raise BusError(f"{interceptor!r} is not an interceptor: it has no on_publish method")
        self._interceptors.append(interceptor)
        if isinstance(interceptor, VisibilityFilter):
            # Its on_publish passes everything through: skip the call on the hot path.
            # Checked inline on the hot path (one comparison per publish, not per delivery).
            self._visibility = interceptor
            return
        self._hooks.append(interceptor)
        on_deliver = getattr(interceptor, "on_deliver", None)
        if callable(on_deliver):
            self._deliver_filters.append(on_deliver)

    @property
    def interceptors(self) -> tuple[Interceptor, ...]:
        return tuple(self._interceptors)

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(
        self,
        pattern: TopicPattern = "#",
        *,
        buffer: int | None = None,
        user_facing: bool = False,
        name: str | None = None,
    ) -> Subscription:
        """A subscription to use with ``async with``; it receives what is published after it
        is entered. ``buffer`` bounds its stream (0: each publish waits for the receiver)."""
        if self._closed:
            raise BusError(f"bus {self.name!r} is closed; subscribe before closing it")
        self._counter += 1
        label = name or (pattern if isinstance(pattern, str) else f"predicate-{self._counter}")
        size = self.default_buffer if buffer is None else buffer
        return Subscription(self, pattern, size, user_facing, label)

    def _attach(self, sub: Subscription) -> None:
        if self._closed:
            raise BusError(f"bus {self.name!r} is closed; subscribe before closing it")
        self._subs.append(sub)
        self._reroute()

    def _detach(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
            self._reroute()

    def _reroute(self) -> None:
        self._routes.clear()
        self._predicates = [s for s in self._subs if not isinstance(s.pattern, str)]

    def _route(self, topic: str) -> list[Subscription]:
        subs = self._routes.get(topic)
        if subs is None:
            words = topic.split(".")
            subs = [
                s
                for s in self._subs
                if isinstance(s.pattern, str) and _match(s.pattern.split("."), words)
            ]
            if len(self._routes) >= _ROUTE_CACHE_LIMIT:
                self._routes.clear()
            self._routes[topic] = subs
        return subs

    # ------------------------------------------------------------ publishing

    async def publish(self, envelope: Envelope) -> Envelope | None:
        """Run the interceptors, then deliver to every matching subscriber.

        Waits while a subscriber's buffer is full (backpressure). Returns the envelope as
        delivered (an interceptor may have replaced it) or None when one dropped it. Each
        subscriber receives one publisher's envelopes in publish order. Do not publish from the
        task that consumes a full subscription: it would wait for itself.
        """
        if self._closed:
            raise BusError(
                f"bus {self.name!r} is closed: cannot publish {envelope.payload.kind!r} on "
                f"{envelope.topic!r}; publish before aclose()"
            )
        if not isinstance(envelope, Envelope):
            raise BusError(
                f"publish() takes an Envelope (build it with oversight.messages.envelope), "
                f"got {type(envelope).__name__}"
            )
        topic = envelope.topic
        stats = self._stats.get(topic)
        if stats is None:
            check_topic(topic)
            stats = self._stats[topic] = TopicStats()
        stats.published += 1
        env = envelope
        for interceptor in self._hooks:
            out = interceptor.on_publish(env)
            if out is None:
                stats.dropped += 1
                self._dropped_by[interceptor.name] = self._dropped_by.get(interceptor.name, 0) + 1
                return None
            if out is not env:
                if not isinstance(out, Envelope):
                    raise BusError(
                        f"interceptor {interceptor.name!r} returned {type(out).__name__}; "
                        "on_publish must return an Envelope or None"
                    )
                stats.replaced += 1
            env = out
        if env.topic != topic:
            stats = self._stats.get(env.topic) or self._stats.setdefault(env.topic, TopicStats())
        if self._pending:
            self._answer(env)
        subs = self._route(env.topic)
        if self._predicates:
            subs = subs + [s for s in self._predicates if s.matches(env)]
        if env.visibility == "internal" and self._visibility is not None:
            kept = [s for s in subs if not s.user_facing]
            if len(kept) != len(subs):
                self._visibility.withheld += len(subs) - len(kept)
                stats.withheld += len(subs) - len(kept)
                subs = kept
        if self._deliver_filters:
            kept = [s for s in subs if all(f(env, s) for f in self._deliver_filters)]
            stats.withheld += len(subs) - len(kept)
            subs = kept
        for index, sub in enumerate(subs):
            try:
                sub._send.send_nowait(env)
            except anyio.WouldBlock:
                await self._deliver_slowly(env, subs, index, stats)
                break
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                continue  # the subscriber left while we were delivering
            stats.delivered += 1
            depth = sub.depth()
            if depth > stats.max_queue_depth:
                stats.max_queue_depth = depth
        return env

    async def _deliver_slowly(
        self, env: Envelope, subs: list[Subscription], start: int, stats: TopicStats
    ) -> None:
        """Deliver ``env`` to ``subs[start:]``, waiting for room; aclose() waits for this."""
        self._inflight += 1
        try:
            for sub in subs[start:]:
                stats.max_queue_depth = max(stats.max_queue_depth, sub.depth())
                try:
                    await sub._send.send(env)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    continue
                stats.delivered += 1
                stats.max_queue_depth = max(stats.max_queue_depth, sub.depth())
        finally:
            self._inflight -= 1
            if self._inflight == 0 and self._idle is not None:
                self._idle.set()

    # ------------------------------------------------------------ request / reply

    def _answer(self, env: Envelope) -> None:
        for parent in env.parents:
            waiter = self._pending.get(parent)
            if waiter is not None:
                # The first replies win (as many as the requester waits for); later ones still
                # reach the topic's subscribers.
                with suppress(
                    anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError
                ):
                    waiter.send_nowait(env)

    # A required timeout, applied with anyio.fail_after inside: a request without one could
    # wait forever for a responder that does not exist.
    async def request(self, envelope: Envelope, *, timeout: float) -> Envelope:  # noqa: ASYNC109
        """Publish ``envelope`` and wait for the first envelope whose ``parents`` include its id.

        Raises :class:`RequestTimeout` when no reply is published within ``timeout`` seconds,
        :class:`BusError` when an interceptor drops the request or the bus closes first.
        """
        (reply,) = await self.request_all(envelope, count=1, timeout=timeout)
        return reply

    async def request_all(
        self,
        envelope: Envelope,
        *,
        count: int,
        timeout: float,  # noqa: ASYNC109 (required, as in request)
    ) -> list[Envelope]:
        """Publish ``envelope`` (e.g. addressed to several responders) and wait for the first
        ``count`` envelopes whose ``parents`` include its id; they are returned in the order
        they were published. Errors as :meth:`request`."""
        if count < 1:
            raise BusError(f"request_all needs count >= 1, got {count}")
        send, receive = anyio.create_memory_object_stream[Envelope](count)
        ids = {envelope.id}
        self._pending[envelope.id] = send
        replies: list[Envelope] = []
        try:
            with anyio.fail_after(timeout):
                delivered = await self.publish(envelope)
                if delivered is None:
                    raise BusError(
                        f"request {envelope.id} on {envelope.topic!r} was dropped by an "
                        "interceptor; no reply can come (see Bus.statistics().dropped_by)"
                    )
                if delivered.id not in ids:
                    ids.add(delivered.id)
                    self._pending[delivered.id] = send
                while len(replies) < count:
                    try:
                        replies.append(await receive.receive())
                    except anyio.EndOfStream:
                        raise BusError(
                            f"bus {self.name!r} closed before request {envelope.id} on "
                            f"{envelope.topic!r} got {count} replies ({len(replies)} came)"
                        ) from None
                return replies
        except TimeoutError:
            raise RequestTimeout(
                f"no reply to {envelope.payload.kind!r} request {envelope.id} on "
                f"{envelope.topic!r} within {timeout} s ({len(replies)} of {count} came); is "
                "a responder subscribed to that topic (Bus.serve) and replying with the "
                "request id in parents?"
            ) from None
        finally:
            for key in ids:
                self._pending.pop(key, None)
            send.close()
            receive.close()

    async def serve(
        self,
        pattern: TopicPattern,
        handler: Callable[[Envelope], Awaitable[Envelope | None]],
        *,
        buffer: int | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Answer requests: for each envelope matching ``pattern``, publish ``handler(env)``
        (unless None). Start it with ``await tg.start(bus.serve, "topic", handler)``; it ends
        when the bus closes.

        When the handler raises, the requester gets a :class:`~oversight.messages.Failure`
        reply (topic ``<request topic>.failure``) instead of waiting for its timeout, and the
        server goes on with the next request.
        """
        name = f"serve:{pattern}" if isinstance(pattern, str) else "serve"
        async with self.subscribe(pattern, buffer=buffer, name=name) as sub:
            task_status.started()
            async for request in sub:
                try:
                    reply = await handler(request)
                except Exception as exc:  # a failing handler answers, it does not hang callers
                    reply = envelope(
                        Failure(
                            stage="serve",
                            error_type=type(exc).__name__,
                            message=str(exc),
                            agent=name,
                        ),
                        run=request.run,
                        episode=request.episode,
                        sender=name,
                        topic=f"{request.topic}.failure",
                        parents=(request.id,),
                    )
                if reply is not None and not self._closed:
                    await self.publish(reply)

    # ------------------------------------------------------------ lifecycle

    def statistics(self) -> BusStatistics:
        """A snapshot of the counters."""
        return BusStatistics(
            topics={t: replace(s) for t, s in self._stats.items()},
            dropped_by=dict(self._dropped_by),
            subscribers=len(self._subs),
        )

    async def aclose(self) -> None:
        """Stop accepting publishes, let publishes in flight finish, then end every
        subscription once it has drained its buffer. Idempotent."""
        if self._closed:
            return
        self._closed = True
        while self._inflight:
            self._idle = anyio.Event()
            await self._idle.wait()
        for sub in list(self._subs):
            sub._send.close()
        for waiter in list(self._pending.values()):
            waiter.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


__all__ = [
    "Bus",
    "BusStatistics",
    "HardBlock",
    "Interceptor",
    "JournalInterceptor",
    "Subscription",
    "TopicPattern",
    "TopicStats",
    "VisibilityFilter",
    "check_topic",
    "topic_matches",
]
