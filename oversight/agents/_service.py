"""Agents as services on the bus: each answers the requests of its capabilities.

An :class:`AgentService` subscribes, for every capability its agent has
(:func:`~oversight.agents.capabilities_of`), to the request topic
``agent.<name>.<capability>``. For each request it calls the agent, **publishes the agent's
messages itself** (sender: the agent, topic ``episode.<kind>``, parents: the request's
parents, so the journal and every interceptor see them) and answers with a
:class:`~oversight.messages.Reply` carrying them as delivered, or the agent's failure. Requests
are served concurrently (``workers`` tasks per capability share its subscription), so model
calls of many episodes meet in the backend and batch.

The coordinator side is :func:`ask`: publish a request, wait for its reply, return the
envelopes (or raise :class:`~oversight.errors.AgentError` when the agent failed).

:class:`LiveEpisodes` is what the coordinator and the in-process services share: the context of
each episode in flight, and the cancel scopes of the requests being served for it. When an
episode ends (finished, failed or timed out) its requests still being served are cancelled and
later requests for it are ignored, so no message of a finished episode reaches the journal.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from ..errors import AgentError
from ..messages import (
    AssessRequest,
    AuditRequest,
    Capability,
    Envelope,
    Failure,
    RankRequest,
    Reply,
    ReviseRequest,
    envelope,
)
from ._capabilities import capabilities_of

if TYPE_CHECKING:
    from ..bus import Bus, Subscription
    from ._base import Agent, EpisodeContext


def request_topic(agent: str, capability: Capability) -> str:
    """The topic an agent's service listens on for one capability: its own
    (``agent.<name>.<capability>``), except for ``assess``, whose requests go to every
    assessor of a candidate at once (``agents.assess``, addressed by
    :attr:`~oversight.messages.AssessRequest.agents`)."""
    return "agents.assess" if capability == "assess" else f"agent.{agent}.{capability}"


class LiveEpisodes:
    """Episodes in flight: their contexts and the requests served for them."""

    def __init__(self) -> None:
        self._contexts: dict[str, EpisodeContext] = {}
        self._scopes: dict[str, set[anyio.CancelScope]] = {}

    def open(self, ctx: EpisodeContext) -> None:
        """Register an episode before its first request."""
        self._contexts[ctx.episode] = ctx
        self._scopes[ctx.episode] = set()

    def get(self, episode: str) -> EpisodeContext | None:
        """The context of an episode in flight, None once it ended."""
        return self._contexts.get(episode)

    def close(self, episode: str) -> None:
        """The episode ended: cancel what is still being served for it. Idempotent."""
        self._contexts.pop(episode, None)
        for scope in self._scopes.pop(episode, ()):
            scope.cancel()

    @contextmanager
    def serving(self, episode: str) -> Iterator[anyio.CancelScope]:
        """A cancel scope for one request of ``episode``, cancelled if the episode ends."""
        with anyio.CancelScope() as scope:
            scopes = self._scopes.get(episode)
            if scopes is None:
                scope.cancel()
            else:
                scopes.add(scope)
            try:
                yield scope
            finally:
                if scopes is not None:
                    scopes.discard(scope)

    def __len__(self) -> int:
        return len(self._contexts)


async def _call(agent: Any, capability: Capability, ctx: EpisodeContext, ask: Any) -> list[Any]:
    """Call the agent's capability method with the request's arguments; its messages."""
    if capability == "draft":
        return [await agent.draft(ctx)]
    if capability == "assess":
        assert isinstance(ask, AssessRequest)
        found = await agent.assess(ctx, ask.candidate_id)
        return list(found) if isinstance(found, Sequence) else [found]
    if capability == "audit":
        assert isinstance(ask, AuditRequest)
        return [
            await agent.audit(
                ctx,
                subject_message=ask.subject_message,
                subject_agent=ask.subject_agent,
                candidate_id=ask.candidate_id,
                principle_id=ask.principle_id,
                subject_verdict=ask.subject_verdict,
            )
        ]
    if capability == "rank":
        assert isinstance(ask, RankRequest)
        return [await agent.rank(ctx, list(ask.candidate_ids))]
    assert isinstance(ask, ReviseRequest)
    return list(
        await agent.revise(ctx, ask.candidate_id, list(ask.principle_ids), ask.round, ask.first_id)
    )


class AgentService:
    """Serves one agent's capabilities on a bus (start it with ``await tg.start(svc.serve)``)."""

    def __init__(
        self, agent: Agent, bus: Bus, episodes: LiveEpisodes, *, workers: int = 64
    ) -> None:
        self.agent = agent
        self.bus = bus
        self.episodes = episodes
        self.workers = max(1, workers)
        """Requests served at once per capability: the run's episode concurrency is enough
        (an episode waits for one request per agent and capability at a time)."""
        self.capabilities: tuple[Capability, ...] = capabilities_of(agent)
        """What the agent answers (may be empty: e.g. people, whose work arrives by queue)."""

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Subscribe to every capability's requests, then answer them until the bus closes."""
        async with anyio.create_task_group() as tg:
            for capability in self.capabilities:
                await tg.start(self._serve, capability)
            task_status.started()

    async def _serve(
        self, capability: Capability, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        topic = request_topic(self.agent.name, capability)
        async with (
            self.bus.subscribe(topic, name=topic) as requests,
            anyio.create_task_group() as tg,
        ):
            for _ in range(self.workers):
                tg.start_soon(self._work, capability, requests)
            task_status.started()

    async def _work(self, capability: Capability, requests: Subscription) -> None:
        """One of the capability's workers: they share the subscription's stream (each
        request goes to one of them)."""
        async for request in requests:
            await self._answer(capability, request)

    async def _answer(self, capability: Capability, request: Envelope) -> None:
        asked = request.payload
        if isinstance(asked, AssessRequest) and self.agent.name not in asked.agents:
            return  # an assess request for other assessors
        ctx = self.episodes.get(request.episode)
        if ctx is None:
            return  # the episode ended (e.g. timed out): nobody waits for this any more
        name = self.agent.name
        with self.episodes.serving(request.episode):
            try:
                delivered = []
                for payload in await _call(self.agent, capability, ctx, request.payload):
                    if self.episodes.get(request.episode) is None:
                        return
                    env = await self.bus.publish(
                        envelope(
                            payload,
                            run=request.run,
                            episode=request.episode,
                            sender=name,
                            topic=f"episode.{payload.kind}",
                            parents=request.parents,
                        )
                    )
                    if env is not None:
                        delivered.append(env)
                reply = Reply(capability=capability, messages=tuple(delivered))
            except Exception as exc:  # the agent failed: its episode fails, the service goes on
                while isinstance(exc, ExceptionGroup) and exc.exceptions:
                    exc = exc.exceptions[0]
                failure = Failure(
                    stage=ctx.stage,
                    error_type=type(exc).__name__,
                    message=str(exc)[:2000],
                    agent=getattr(exc, "agent", None) or name,
                )
                reply = Reply(capability=capability, failure=failure)
            if self.episodes.get(request.episode) is not None:
                await self.bus.publish(
                    envelope(
                        reply,
                        run=request.run,
                        episode=request.episode,
                        sender=name,
                        topic=f"{request.topic}.reply",
                        parents=(request.id,),
                    )
                )


# A required timeout, passed on to Bus.request (which applies it with anyio.fail_after).
async def ask(
    bus: Bus,
    ctx: EpisodeContext,
    agent: str,
    capability: Capability,
    payload: Any,
    parents: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109
) -> list[Envelope]:
    """Ask ``agent`` for ``capability`` in the episode of ``ctx``; the envelopes it published.

    Raises :class:`~oversight.errors.AgentError` when the agent failed, and
    :class:`~oversight.errors.RequestTimeout` when no reply came within ``timeout`` seconds.
    """
    request = envelope(
        payload,
        run=ctx.run,
        episode=ctx.episode,
        sender="runtime",
        topic=request_topic(agent, capability),
        parents=tuple(parents),
    )
    return _messages(await bus.request(request, timeout=timeout), agent, capability)


def _messages(reply_env: Envelope, agent: str, capability: Capability) -> list[Envelope]:
    reply = reply_env.payload
    assert isinstance(reply, Reply), f"{agent} answered {capability} with {reply.kind}"
    if reply.failure is not None:
        raise AgentError(
            reply.failure.message,
            error_type=reply.failure.error_type,
            agent=reply.failure.agent or agent,
        )
    return list(reply.messages)


async def ask_assessors(
    bus: Bus,
    ctx: EpisodeContext,
    agents: Sequence[str],
    candidate_id: str,
    parents: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109
) -> list[tuple[str, list[Envelope]]]:
    """Ask several assessors at once (one request, one reply each); ``(agent, envelopes)``
    sorted by agent name. :class:`~oversight.errors.AgentError` when one of them failed."""
    request = envelope(
        AssessRequest(candidate_id=candidate_id, agents=tuple(agents)),
        run=ctx.run,
        episode=ctx.episode,
        sender="runtime",
        topic=request_topic("", "assess"),
        parents=tuple(parents),
    )
    replies = await bus.request_all(request, count=len(agents), timeout=timeout)
    answers = [(r.sender, _messages(r, r.sender, "assess")) for r in replies]
    return sorted(answers, key=lambda item: item[0])


__all__ = ["AgentService", "LiveEpisodes", "ask", "ask_assessors", "request_topic"]
