"""The bus over NATS: agents served by worker processes on any machine, reached by capability.

Two sides, both built on the in-process :class:`~oversight.bus.Bus` (still the default):

* :class:`Worker` (``oversight worker roles/x.yaml --agents harm-critic,safety --bus URL``)
  builds the named agents and subscribes, for each capability, to
  ``oversight.<config hash>.<agent>.<capability>`` in the **queue group named after the agent**:
  replicas of one agent share its requests, NATS hands each request to one of them.
* :class:`RemoteAgents` (``oversight run roles/x.yaml --bus URL``) sits on the coordinator's
  bus like the agents' own services: it takes the requests addressed to agents that workers
  serve, sends each over NATS as an :class:`~oversight.transport.AgentCall` (the request plus
  what of the episode the agent reads: the prompt, the candidates the request names, and the
  messages so far only for a revise request; a replica keeps no state), and
  publishes the agent's messages and its :class:`~oversight.messages.Reply` on the local bus.
  The journal, the visibility filter and the hard blocks see them there, exactly as for an
  in-process agent. Agents that no worker serves run in-process in the coordinator.

Crash safety (request retry with idempotent answers, no JetStream needed): a worker sends a
heartbeat on the request's reply subject when it takes a request and every ``heartbeat``
seconds while it works. When nothing comes for ``heartbeat_timeout`` seconds (a worker killed
with ``kill -9`` mid-request), the coordinator sends the request again: the queue group gives it
to another replica. Only the **first** answer to a request is used; workers never journal, so a
second answer (a slow replica that was not dead after all) is counted and dropped, and nothing
is duplicated in the journal or the rows. An answer that comes after its episode ended
(timed out or failed) is dropped and journaled as a ``late-reply`` failure line of that
episode. A worker that takes a request and never answers keeps its heartbeat going: its
episode times out (``episode_timeout``, a journaled failure) and the others go on.

Checked at start: the NATS URL (:class:`~oversight.errors.TransportError` naming it and how to
start a server) and every worker's configuration hash (:func:`hierarchy_hash`; a worker that
loaded another hierarchy, constitution or policy is a :class:`~oversight.errors.ConfigError`).
Every message carries :data:`~oversight.messages.SCHEMA_VERSION`; another version is refused.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ..agents import EpisodeContext, capabilities_of, create_agent
from ..agents._service import _call, request_topic
from ..backends import ModelBackend, create_backend
from ..errors import ConfigError, InputError, PrerequisiteError, TransportError
from ..messages import (
    AssessRequest,
    Capability,
    Envelope,
    Failure,
    Reply,
    envelope,
)
from ._wire import (
    HEARTBEAT,
    HELLO_SUBJECT,
    AgentAnswer,
    AgentCall,
    WorkerHello,
    agent_subject,
    hierarchy_hash,
    read_wire,
)

if TYPE_CHECKING:
    from ..agents import Agent, LiveEpisodes
    from ..bus import Bus, Subscription

log = logging.getLogger("oversight.transport")
_REMEMBERED = 100_000  # request ids kept to tell a duplicate or late answer from garbage


def start_server_hint(url: str) -> str:
    return (
        f"start a NATS server (`nats-server -a 127.0.0.1 -p 4222 -js`; Debian/Ubuntu: "
        f"`apt-get install nats-server`) or give --bus the URL of a running one (got {url})"
    )


async def connect(url: str, *, name: str, timeout: float = 5.0) -> Any:  # noqa: ASYNC109
    """A nats-py connection to ``url`` (reconnecting on its own once up);
    :class:`TransportError` naming the URL when no server answers within ``timeout`` s."""
    try:
        import nats
    except ImportError:
        raise PrerequisiteError(
            "the NATS transport needs nats-py: pip install 'oversight[nats]'"
        ) from None
    errors: list[BaseException] = []

    async def on_error(exc: BaseException) -> None:
        errors.append(exc)
        log.debug("nats (%s): %s", url, exc)

    try:
        with anyio.fail_after(timeout):
            return await nats.connect(
                url,
                name=name,
                connect_timeout=min(2.0, timeout),
                reconnect_time_wait=0.25,
                max_reconnect_attempts=-1,
                error_cb=on_error,
            )
    except (TimeoutError, OSError, ValueError, nats.errors.Error) as err:
        cause = errors[-1] if errors else err
        raise TransportError(
            f"cannot reach the NATS server at {url} within {timeout:g} s "
            f"({type(cause).__name__}: {cause}); {start_server_hint(url)}"
        ) from None


def build_agents(
    spec: Any, names: Sequence[str], backends: Mapping[str, ModelBackend] | None = None
) -> tuple[dict[str, Agent], dict[str, ModelBackend]]:
    """The named agents of a hierarchy with the backends they use (and only those)."""
    made: dict[str, ModelBackend] = dict(backends or {})
    agents: dict[str, Agent] = {}
    known = [a.name for a in spec.agents]
    for name in names:
        if name not in known:
            raise ConfigError(
                f"--agents {name!r}: no such agent in hierarchy {spec.name!r}; its agents: "
                f"{', '.join(known)}",
                path=spec.source,
            )
        agent_spec = spec.agent(name)
        options = dict(agent_spec.options)
        if agent_spec.principles:
            options["principles"] = list(agent_spec.principles)
        backend = None
        if agent_spec.model:
            if agent_spec.model not in made:
                model = spec.models[agent_spec.model]
                made[agent_spec.model] = create_backend(model.backend, **dict(model.options))
            backend = made[agent_spec.model]
        agents[name] = create_agent(agent_spec.role, name, backend, options)
        if not capabilities_of(agents[name]):
            raise ConfigError(
                f"--agents {name!r}: role {agent_spec.role!r} answers no request (its work "
                "arrives by the queue); leave it out of the worker",
                path=spec.source,
            )
    return agents, made


def _remember(store: OrderedDict[str, Any], key: str, value: Any) -> None:
    store[key] = value
    if len(store) > _REMEMBERED:
        store.popitem(last=False)


# --------------------------------------------------------------------------- coordinator side


@dataclass
class TransportStats:
    """Counters of the coordinator's side of the NATS transport."""

    sent: int = 0
    """Agent calls sent (retries included)."""
    retries: int = 0
    """Calls sent again after ``heartbeat_timeout`` seconds of silence."""
    answered: int = 0
    """Calls answered (the first answer of each)."""
    duplicates: int = 0
    """Second answers to a call already answered (dropped)."""
    late: int = 0
    """Answers that came after their episode ended (dropped and journaled)."""


class RemoteAgents:
    """Sends the requests of agents served by workers over NATS (see the module docstring).

    ``await remote.open(agents)`` connects and finds the workers (``wait_workers``: wait up to
    ``discover_timeout`` s until that many answered; else take those answering within
    ``discover`` s); then start :meth:`serve` in the runtime's task group.
    """

    def __init__(
        self,
        url: str,
        spec: Any,
        *,
        wait_workers: int = 0,
        discover: float = 1.0,
        discover_timeout: float = 60.0,
        heartbeat_timeout: float = 10.0,
        connect_timeout: float = 5.0,
    ) -> None:
        if not heartbeat_timeout > 0:
            raise InputError(
                f"--heartbeat-timeout must be above 0 seconds (got {heartbeat_timeout:g}); "
                "the default is 10"
            )
        self.url = url
        self.spec = spec
        self.hash = hierarchy_hash(spec)
        """:func:`hierarchy_hash` of the coordinator's configuration."""
        self.wait_workers = wait_workers
        self.discover = discover
        self.discover_timeout = discover_timeout
        self.heartbeat_timeout = heartbeat_timeout
        self.connect_timeout = connect_timeout
        self.workers: dict[str, WorkerHello] = {}
        """Worker id -> its hello."""
        self.served: dict[str, tuple[Capability, ...]] = {}
        """Agent name -> capabilities served by workers."""
        self.stats = TransportStats()
        self._nc: Any = None
        self._inbox = ""
        self._pending: dict[str, MemoryObjectSendStream[bytes]] = {}
        self._reads: dict[str, frozenset[str]] = {}
        """Agent name -> the capabilities whose calls carry the whole episode so far."""
        self._answered: OrderedDict[str, None] = OrderedDict()
        self._abandoned: OrderedDict[str, tuple[Envelope, str, str]] = OrderedDict()

    async def open(self, agents: Mapping[str, Agent]) -> None:
        """Connect and find the workers; :class:`ConfigError` when one loaded another
        configuration, :class:`TransportError` when too few answered."""
        self._nc = await connect(
            self.url, name="oversight-coordinator", timeout=self.connect_timeout
        )
        try:
            hellos = await self._hellos()
            wrong = [h for h in hellos.values() if h.hierarchy != self.hash]
            if wrong:
                found = "; ".join(
                    f"worker {h.worker} loaded {h.source or h.hierarchy_name!r} "
                    f"(hash {h.hierarchy})"
                    for h in wrong
                )
                raise ConfigError(
                    f"workers on {self.url} run another configuration than this run's "
                    f"{self.spec.source or self.spec.name!r} (hash {self.hash}): {found}. "
                    "Start every worker with the same hierarchy, constitution and escalation "
                    "files as the coordinator (or stop the stale workers)",
                    path=self.spec.source,
                )
            slow = [h for h in hellos.values() if h.heartbeat >= self.heartbeat_timeout]
            if slow:
                found = "; ".join(f"worker {h.worker} every {h.heartbeat:g} s" for h in slow)
                raise ConfigError(
                    f"workers on {self.url} send heartbeats no more often than this run's "
                    f"--heartbeat-timeout of {self.heartbeat_timeout:g} s ({found}): every "
                    "request they hold would be sent again. Give the run a longer "
                    "--heartbeat-timeout or the workers a shorter --heartbeat"
                )
            self.workers = hellos
            for hello in hellos.values():
                for name, caps in hello.agents.items():
                    if name in agents:
                        known = self.served.get(name, ())
                        self.served[name] = tuple(dict.fromkeys((*known, *caps)))
                        self._reads[name] = frozenset(
                            getattr(agents[name], "reads_episode", ("revise",))
                        )
            self._inbox = self._nc.new_inbox()
        except BaseException:
            await self.aclose()
            raise

    async def _hellos(self) -> dict[str, WorkerHello]:
        nc = self._nc
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        hellos: dict[str, WorkerHello] = {}
        waiting = self.wait_workers > 0
        deadline = anyio.current_time() + (self.discover_timeout if waiting else self.discover)
        try:
            while anyio.current_time() < deadline:
                await nc.publish(HELLO_SUBJECT, b"", reply=inbox)
                probe_end = min(deadline, anyio.current_time() + 0.5)
                while (left := probe_end - anyio.current_time()) > 0:
                    msg = None
                    with anyio.move_on_after(left):
                        msg = await sub.next_msg(timeout=None)
                    if msg is None:
                        break
                    hello = read_wire(msg.data, WorkerHello, what="a worker's hello")
                    hellos[hello.worker] = hello
                if waiting and len(hellos) >= self.wait_workers:
                    break
        finally:
            await sub.unsubscribe()
        if waiting and len(hellos) < self.wait_workers:
            raise TransportError(
                f"{len(hellos)} of {self.wait_workers} workers answered on {self.url} within "
                f"{self.discover_timeout:g} s; start them with `oversight worker "
                f"{self.spec.source or 'roles/....yaml'} --agents ... --bus {self.url}`"
            )
        return hellos

    async def aclose(self) -> None:
        """Close the connection (idempotent)."""
        nc, self._nc = self._nc, None
        if nc is not None:
            with anyio.CancelScope(shield=True):
                await nc.close()

    def summary(self) -> dict[str, Any]:
        """Workers, agents served remotely and the counters (for the run summary)."""
        return {
            "url": self.url,
            "hierarchy_hash": self.hash,
            "workers": sorted(self.workers),
            "remote_agents": sorted(self.served),
            **asdict(self.stats),
        }

    async def serve(
        self,
        bus: Bus,
        live: LiveEpisodes,
        *,
        task_status: TaskStatus[frozenset[str]] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Forward the requests of remote agents until cancelled; ``started`` with the names of
        the agents served remotely (the runtime serves the others in-process)."""
        if self._nc is None:
            raise TransportError("RemoteAgents.serve() before open(); call open(agents) first")
        answers = await self._nc.subscribe(f"{self._inbox}.*")
        try:
            async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
                tg.start_soon(self._read_answers, answers, bus)
                assessors = [n for n, caps in self.served.items() if "assess" in caps]
                if assessors:
                    sub = await stack.enter_async_context(
                        bus.subscribe("agents.assess", name="nats:agents.assess")
                    )
                    tg.start_soon(self._route, sub, tg, bus, live, None, "assess")
                for name, caps in self.served.items():
                    for cap in caps:
                        if cap == "assess":
                            continue
                        topic = request_topic(name, cap)
                        sub = await stack.enter_async_context(
                            bus.subscribe(topic, name=f"nats:{topic}")
                        )
                        tg.start_soon(self._route, sub, tg, bus, live, name, cap)
                task_status.started(frozenset(self.served))
        finally:
            with anyio.CancelScope(shield=True):
                await answers.unsubscribe()

    async def _route(
        self,
        requests: Subscription,
        tg: TaskGroup,
        bus: Bus,
        live: LiveEpisodes,
        agent: str | None,
        capability: Capability,
    ) -> None:
        async for request in requests:
            if agent is not None:
                tg.start_soon(self._forward, bus, live, request, agent, capability)
                continue
            asked = request.payload
            assert isinstance(asked, AssessRequest)
            for name in asked.agents:
                if name in self.served and "assess" in self.served[name]:
                    tg.start_soon(self._forward, bus, live, request, name, capability)

    async def _forward(
        self, bus: Bus, live: LiveEpisodes, request: Envelope, agent: str, capability: Capability
    ) -> None:
        ctx = live.get(request.episode)
        if ctx is None:
            return
        key = f"{request.id}-{agent}" if capability == "assess" else request.id
        candidates, published = self._context(agent, capability, request, ctx)
        call = AgentCall(
            hierarchy=self.hash,
            agent=agent,
            capability=capability,
            request=request,
            prompt=ctx.prompt,
            candidates=candidates,
            stage=ctx.stage,
            published=published,
        )
        subject = agent_subject(self.hash, agent, capability)
        send, receive = anyio.create_memory_object_stream[bytes](64)
        self._pending[key] = send
        raw: bytes | None = None
        try:
            with live.serving(request.episode):
                raw = await self._exchange(subject, key, call.model_dump_json().encode(), receive)
        finally:
            self._pending.pop(key, None)
            send.close()
            receive.close()
            if raw is None:  # the episode ended first: an answer coming now is late
                _remember(self._abandoned, key, (request, agent, capability))
        if raw is None:
            return
        _remember(self._answered, key, None)
        self.stats.answered += 1
        try:
            answer = read_wire(raw, AgentAnswer, what=f"the answer of {agent} to {capability}")
            failure = answer.failure
            payloads = answer.messages
        except TransportError as err:
            failure = Failure(
                stage=ctx.stage, error_type="TransportError", message=str(err), agent=agent
            )
            payloads = ()
        await self._reply(bus, live, request, agent, capability, payloads, failure)

    def _context(
        self, agent: str, capability: Capability, request: Envelope, ctx: EpisodeContext
    ) -> tuple[dict[str, str], tuple[Envelope, ...]]:
        """What of the episode a call carries: the candidates its request names, and the
        messages so far only where the agent's role reads them
        (:attr:`~oversight.agents.Agent.reads_episode`: the reviser's ``revise``)."""
        if capability in self._reads.get(agent, ()):
            published = tuple(e for e in ctx.published if isinstance(e, Envelope))
            return dict(ctx.candidates), published
        asked = request.payload
        named = [getattr(asked, "candidate_id", None), *getattr(asked, "candidate_ids", ())]
        return {c: ctx.candidates[c] for c in named if c in ctx.candidates}, ()

    async def _exchange(
        self, subject: str, key: str, data: bytes, answers: MemoryObjectReceiveStream[bytes]
    ) -> bytes:
        """Send the call until a worker answers it; silence past ``heartbeat_timeout``
        (a dead worker, or none subscribed) sends it again."""
        reply_to = f"{self._inbox}.{key}"
        while True:
            await self._nc.publish(subject, data, reply=reply_to)
            self.stats.sent += 1
            while True:
                raw: bytes | None = None
                with anyio.move_on_after(self.heartbeat_timeout):
                    raw = await answers.receive()
                if raw is None:
                    break
                if raw != HEARTBEAT:
                    return raw
            self.stats.retries += 1
            log.warning(
                "no word from a worker on %s for %.1f s: sending the request again", subject,
                self.heartbeat_timeout,
            )  # fmt: skip

    async def _reply(
        self,
        bus: Bus,
        live: LiveEpisodes,
        request: Envelope,
        agent: str,
        capability: Capability,
        payloads: Sequence[Any],
        failure: Failure | None,
    ) -> None:
        """Publish the agent's messages on the local bus (the journal sees them there), then
        its reply, as an in-process :class:`~oversight.agents.AgentService` does."""
        delivered = []
        if failure is None:
            for payload in payloads:
                if live.get(request.episode) is None or bus.closed:
                    return
                env = await bus.publish(
                    envelope(
                        payload,
                        run=request.run,
                        episode=request.episode,
                        sender=agent,
                        topic=f"episode.{payload.kind}",
                        parents=request.parents,
                    )
                )
                if env is not None:
                    delivered.append(env)
        reply = Reply(capability=capability, messages=tuple(delivered), failure=failure)
        if live.get(request.episode) is not None and not bus.closed:
            await bus.publish(
                envelope(
                    reply,
                    run=request.run,
                    episode=request.episode,
                    sender=agent,
                    topic=f"{request.topic}.reply",
                    parents=(request.id,),
                )
            )

    async def _read_answers(self, sub: Any, bus: Bus) -> None:
        async for msg in sub.messages:
            key = msg.subject.rsplit(".", 1)[-1]
            waiter = self._pending.get(key)
            if waiter is not None:
                try:
                    waiter.send_nowait(msg.data)
                except anyio.WouldBlock:
                    if msg.data != HEARTBEAT:
                        await waiter.send(msg.data)
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    pass
                continue
            if msg.data == HEARTBEAT:
                continue
            if key in self._answered:
                self.stats.duplicates += 1
                continue
            late = self._abandoned.pop(key, None)
            if late is None:
                continue  # not ours (a previous coordinator's): nothing to record it under
            self.stats.late += 1
            request, agent, capability = late
            if not bus.closed:
                await bus.publish(
                    envelope(
                        Failure(
                            stage="late-reply",
                            error_type="LateReply",
                            message=(
                                f"{agent} answered the {capability} request {request.id} after "
                                "its episode ended; the answer was dropped"
                            ),
                            agent=agent,
                        ),
                        run=request.run,
                        episode=request.episode,
                        sender="runtime",
                        topic="episode.failure",
                        parents=(request.id,),
                    )
                )


# --------------------------------------------------------------------------- worker side


class Worker:
    """Serves some agents of a hierarchy over NATS (``oversight worker``)."""

    def __init__(
        self,
        spec: Any,
        agents: Sequence[str],
        url: str,
        *,
        concurrency: int = 64,
        heartbeat: float = 1.0,
        backends: Mapping[str, ModelBackend] | None = None,
        connect_timeout: float = 5.0,
    ) -> None:
        if not agents:
            raise ConfigError("--agents: name at least one agent of the hierarchy to serve")
        if not heartbeat > 0:
            raise InputError(
                f"--heartbeat must be above 0 seconds (got {heartbeat:g}); the default is 1"
            )
        self.spec = spec
        self.url = url
        self.hash = hierarchy_hash(spec)
        self.concurrency = max(1, concurrency)
        self.heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self.agents, self.backends = build_agents(spec, list(dict.fromkeys(agents)), backends)
        for name in self.agents:
            agent_subject(self.hash, name, "draft")  # the name must be a subject token
        self.id = f"{socket.gethostname()}:{os.getpid()}"
        """``host:pid``."""
        self.served = 0
        """Requests answered so far."""
        self._nc: Any = None

    def hello(self) -> WorkerHello:
        return WorkerHello(
            worker=self.id,
            hierarchy=self.hash,
            hierarchy_name=self.spec.name,
            source=self.spec.source,
            heartbeat=self.heartbeat,
            agents={name: capabilities_of(agent) for name, agent in self.agents.items()},
        )

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Connect, subscribe and answer until cancelled (then close the backends)."""
        self._nc = await connect(
            self.url, name=f"oversight-worker {self.id}", timeout=self.connect_timeout
        )
        limiter = anyio.CapacityLimiter(self.concurrency)
        try:
            async with anyio.create_task_group() as tg:
                hello = await self._nc.subscribe(HELLO_SUBJECT)
                tg.start_soon(self._hello, hello)
                for name, agent in self.agents.items():
                    for cap in capabilities_of(agent):
                        sub = await self._nc.subscribe(
                            agent_subject(self.hash, name, cap), queue=name
                        )
                        tg.start_soon(self._take, sub, tg, agent, cap, limiter)
                await self._nc.flush()
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                await self._nc.close()
                for backend in self.backends.values():
                    await backend.aclose()

    async def _hello(self, sub: Any) -> None:
        data = self.hello().model_dump_json().encode()
        async for msg in sub.messages:
            if msg.reply:
                await self._nc.publish(msg.reply, data)

    async def _take(
        self, sub: Any, tg: TaskGroup, agent: Agent, cap: Capability, limiter: Any
    ) -> None:
        async for msg in sub.messages:
            tg.start_soon(self._handle, msg, agent, cap, limiter)

    async def _handle(self, msg: Any, agent: Agent, cap: Capability, limiter: Any) -> None:
        async with anyio.create_task_group() as beats:
            beats.start_soon(self._beat, msg.reply)
            try:
                answer = await self._answer(msg.data, agent, cap, limiter)
            finally:
                beats.cancel_scope.cancel()
        await self._nc.publish(msg.reply, answer.model_dump_json().encode())
        self.served += 1

    async def _beat(self, reply: str) -> None:
        while True:
            await self._nc.publish(reply, HEARTBEAT)
            await anyio.sleep(self.heartbeat)

    async def _answer(
        self, data: bytes, agent: Agent, cap: Capability, limiter: Any
    ) -> AgentAnswer:
        stage = "transport"
        try:
            call = read_wire(data, AgentCall, what=f"a {cap} request to {agent.name}")
            stage = call.stage
            if call.hierarchy != self.hash:
                raise ConfigError(
                    f"worker {self.id} loaded {self.spec.source or self.spec.name!r} (hash "
                    f"{self.hash}) but the coordinator runs hash {call.hierarchy}: start the "
                    "worker with the coordinator's hierarchy, constitution and policy"
                )
            ctx = EpisodeContext(
                run=call.request.run,
                episode=call.request.episode,
                prompt=call.prompt,
                constitution=self.spec.constitution,
                settings=self.spec.settings,
                candidates=dict(call.candidates),
                stage=call.stage,
                published=list(call.published),
            )
            async with limiter:
                payloads = await _call(agent, cap, ctx, call.request.payload)
            return AgentAnswer(worker=self.id, messages=tuple(payloads))
        except Exception as exc:  # the agent failed: its episode fails, the worker goes on
            while isinstance(exc, ExceptionGroup) and exc.exceptions:
                exc = exc.exceptions[0]
            failure = Failure(
                stage=stage,
                error_type=getattr(exc, "error_type", None) or type(exc).__name__,
                message=str(exc)[:2000],
                agent=getattr(exc, "agent", None) or agent.name,
            )
            return AgentAnswer(worker=self.id, failure=failure)


__all__ = [
    "RemoteAgents",
    "TransportStats",
    "Worker",
    "build_agents",
    "connect",
    "start_server_hint",
]
