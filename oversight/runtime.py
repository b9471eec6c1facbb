"""The runtime: owns one task group, serves the agents of a hierarchy on the bus, runs episodes.

:class:`Runtime` builds the backends and agents of a hierarchy, opens the bus with its
interceptors (the journal, the visibility filter and the hard block that keeps internal
reasoning internal: installed in every run) and starts one
:class:`~oversight.agents.AgentService` per agent with ``tg.start``. Each agent then answers the
requests of its capabilities; the :class:`~oversight.coordinator.Coordinator` runs each episode
as requests and replies (see :mod:`oversight.coordinator` for the steps). Many episodes run at
once (``concurrency``), so model calls from different episodes meet in the backends and batch.

An agent that raises, or a backend that hangs past ``episode_timeout``, becomes a
:class:`~oversight.messages.Failure` for that episode only. The journal is flushed after every
episode; on resume the episodes already finished in the journal are skipped.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from .agents import Agent, AgentService, EpisodeContext, LiveEpisodes, create_agent
from .backends import ModelBackend, create_backend
from .bus import Bus, HardBlock, Interceptor, JournalInterceptor
from .consensus import CompiledCore
from .coordinator import Cast, Coordinator, EpisodeOutcome
from .governance import ConstitutionSet
from .journal import Journal
from .messages import INTERNAL_KINDS, Failure, Prompt, envelope
from .priority import PriorityGraph
from .prompts import PromptProblem


def episode_id(run: str, prompt_id: str) -> str:
    """Episode ids are fixed by run and prompt, so a resumed run reuses them (and the queue's
    idempotent submit never duplicates a case)."""
    return hashlib.blake2b(f"{run}\x00{prompt_id}".encode(), digest_size=12).hexdigest()


def internal_stays_internal() -> HardBlock:
    """The hard block of every run: an envelope of an internal kind (critique, judgment, ...)
    published as ``public`` is re-marked ``internal`` before anyone sees it, so reasoning never
    reaches a user-facing subscriber whoever built the envelope (counted as ``replaced``)."""
    return HardBlock(
        lambda env: env.visibility == "public" and env.payload.kind in INTERNAL_KINDS,
        replacement=lambda env: env.model_copy(update={"visibility": "internal"}),
        name="internal-stays-internal",
    )


@dataclass
class RunResult:
    """What :meth:`Runtime.run` returns."""

    run: str
    outcomes: list[EpisodeOutcome]
    skipped: int
    """Episodes already finished in the journal (resume)."""
    wall_seconds: float
    messages: int
    """Envelopes journaled (requests to agents and their replies are transport, not counted)."""

    def counts(self) -> dict[str, Any]:
        status = Counter(o.status for o in self.outcomes)
        violations = Counter(p for o in self.outcomes for p in o.draft_violations)
        strategies = Counter(o.strategy for o in self.outcomes if o.status != "failed")
        triggers = Counter(t for o in self.outcomes for t in o.triggers)
        sources = Counter(o.source for o in self.outcomes if o.status == "consensus")
        done = len(self.outcomes)
        return {
            "episodes": done,
            "consensus": status.get("consensus", 0),
            "escalated": status.get("escalated", 0),
            "failed": status.get("failed", 0),
            "skipped_finished": self.skipped,
            "violations_per_principle": dict(sorted(violations.items())),
            "resolutions_per_strategy": dict(sorted(strategies.items())),
            "escalation_triggers": dict(sorted(triggers.items())),
            "targets_per_source": dict(sorted(sources.items())),
            "wall_seconds": round(self.wall_seconds, 3),
            "episodes_per_second": round(done / self.wall_seconds, 2) if self.wall_seconds else 0,
            "messages": self.messages,
        }


class Runtime:
    """Runs a hierarchy over prompts. Build it, then ``await runtime.run(prompts)``."""

    def __init__(
        self,
        spec: Any,
        *,
        run_name: str,
        run_dir: str | Path,
        queue: Any | None = None,
        concurrency: int | None = None,
        episode_timeout: float = 300.0,
        backends: dict[str, ModelBackend] | None = None,
        interceptors: Sequence[Interceptor] = (),
        remote: Any | None = None,
    ) -> None:
        self.spec = spec
        self.run_name = run_name
        self.run_dir = Path(run_dir)
        self.queue = queue
        self.concurrency = int(concurrency or getattr(spec.settings, "concurrency", 8) or 8)
        self.episode_timeout = episode_timeout
        self.constitution = spec.constitution
        self.settings = spec.settings
        self.graph = PriorityGraph(self.constitution)
        self.core = CompiledCore.from_config(self.graph, spec.policy)
        constitutions = getattr(spec, "constitutions", None)
        self.constitutions: ConstitutionSet = (
            constitutions
            if isinstance(constitutions, ConstitutionSet)
            else ConstitutionSet(self.constitution, spec.policy)
        )
        """The constitutions selected per request from each prompt's context."""
        self.interceptors = list(interceptors)
        """Extra interceptors, after the journal and the standard hard block."""
        self.backends = dict(backends or {})
        """Model name -> backend: those given, and those built for the agents run here. With
        ``remote``, an agent served by workers gets none: its model is built only in the workers
        (the coordinator builds the rest once :meth:`run` found the workers)."""
        self.agents: dict[str, Agent] = {}
        """Agent name -> agent. With ``remote``, the agents start without backends (enough to
        know their capabilities); :meth:`run` equips those that no worker serves."""
        self._equip([a.name for a in spec.agents], with_backends=remote is None)
        self.levels: dict[str, int] = dict(spec.levels())
        self.cast = Cast.of(spec.base.name, self.agents, list(spec.supervision))
        self.on_outcome: list[Callable[[EpisodeOutcome], None]] = []
        self.remote = remote
        """A transport serving some agents elsewhere (:class:`oversight.transport.RemoteAgents`):
        opened by :meth:`run`; the agents it does not serve run in-process."""

    def _equip(self, names: Sequence[str], *, with_backends: bool = True) -> None:
        """(Re)build the named agents, with the backends of their models when
        ``with_backends`` (each model built once, and only when one of them uses it)."""
        for name in names:
            agent_spec = self.spec.agent(name)
            options = dict(agent_spec.options)
            if agent_spec.principles:
                options["principles"] = list(agent_spec.principles)
            backend = None
            if with_backends and agent_spec.model:
                if agent_spec.model not in self.backends:
                    model = self.spec.models[agent_spec.model]
                    self.backends[agent_spec.model] = create_backend(
                        model.backend, **dict(model.options)
                    )
                backend = self.backends[agent_spec.model]
            self.agents[name] = create_agent(agent_spec.role, name, backend, options)

    # -- one episode ---------------------------------------------------------------------------
    async def _episode(
        self, coordinator: Coordinator, live: LiveEpisodes, prompt: Prompt, journal: Journal
    ) -> EpisodeOutcome:
        ep = episode_id(self.run_name, prompt.prompt_id)
        variant = self.constitutions.for_context(prompt.context)
        ctx = EpisodeContext(
            run=self.run_name,
            episode=ep,
            prompt=prompt,
            constitution=variant.constitution,
            settings=self.settings,
        )
        prompt_env = await coordinator.publish(ctx, prompt, ())
        assert prompt_env is not None, "an interceptor dropped the prompt"
        await coordinator.publish(ctx, variant.record(prompt.context), (prompt_env.id,))
        outcome = EpisodeOutcome(prompt.prompt_id, ep, "failed", labels=dict(prompt.labels))
        live.open(ctx)
        failure: Failure | None = None
        try:
            with anyio.fail_after(self.episode_timeout):
                outcome = await coordinator.oversee(ctx, prompt_env, outcome, variant)
        except TimeoutError:
            failure = Failure(
                stage=ctx.stage,
                error_type="TimeoutError",
                message=f"episode exceeded {self.episode_timeout:g}s",
            )
        except Exception as exc:  # an agent that raises fails its episode, not the run
            while isinstance(exc, ExceptionGroup) and exc.exceptions:
                exc = exc.exceptions[0]
            failure = Failure(
                stage=ctx.stage,
                error_type=getattr(exc, "error_type", None) or type(exc).__name__,
                message=str(exc)[:2000],
                agent=getattr(exc, "agent", None),
            )
        finally:
            live.close(ep)  # nothing still served for it may publish after this
        if failure is not None:
            await coordinator.publish(ctx, failure, (prompt_env.id,))
            outcome.status = "failed"
        journal.flush()
        return outcome

    # -- the run -------------------------------------------------------------------------------
    async def run(
        self,
        prompts: Sequence[Prompt | PromptProblem],
        *,
        resume: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> RunResult:
        """Run every prompt not already finished in the journal; return the outcomes."""
        started = time.perf_counter()
        journal, scan = Journal.open(self.run_dir / "journal.jsonl", resume=resume)
        finished = scan.finished_episodes()
        prompts = [
            self.constitutions.check_prompt(p) if isinstance(p, Prompt) else p for p in prompts
        ]
        todo = [p for p in prompts if episode_id(self.run_name, p.prompt_id) not in finished]
        skipped = len(prompts) - len(todo)
        outcomes: list[EpisodeOutcome] = []
        done = 0
        try:
            if self.remote is not None:
                await self.remote.open(self.agents)
                self._equip([n for n in self.agents if n not in self.remote.served])
            journaled = JournalInterceptor(journal.file)
            interceptors: list[Interceptor] = [
                internal_stays_internal(),
                journaled,
                *self.interceptors,
            ]
            async with Bus(interceptors=interceptors, buffer=max(64, self.concurrency)) as bus:
                live = LiveEpisodes()
                coordinator = Coordinator(
                    bus=bus,
                    cast=self.cast,
                    core=self.core,
                    graph=self.graph,
                    levels=self.levels,
                    settings=self.settings,
                    policy=self.spec.policy,
                    queue=self.queue,
                    timeout=self.episode_timeout,
                )
                send, receive = anyio.create_memory_object_stream[Prompt | PromptProblem](
                    self.concurrency
                )
                workers = min(self.concurrency, max(len(todo), 1))
                idle = anyio.Event()

                async def worker(items_stream: Any) -> None:
                    nonlocal done, workers
                    async with items_stream as items:
                        async for item in items:
                            if isinstance(item, PromptProblem):
                                outcome = await self._problem(bus, item, journal)
                            else:
                                outcome = await self._episode(coordinator, live, item, journal)
                            outcomes.append(outcome)
                            for callback in self.on_outcome:
                                callback(outcome)
                            done += 1
                            if progress is not None:
                                progress(done, len(todo))
                    workers -= 1
                    if workers == 0:
                        idle.set()

                async with anyio.create_task_group() as tg:
                    remote: frozenset[str] = frozenset()
                    if self.remote is not None:
                        remote = await tg.start(self.remote.serve, bus, live)
                    for agent in self.agents.values():
                        if agent.name in remote:
                            continue
                        service = AgentService(agent, bus, live, workers=self.concurrency)
                        await tg.start(service.serve)
                    with receive:
                        for _ in range(workers):
                            tg.start_soon(worker, receive.clone())
                    async with send:
                        for item in todo:
                            await send.send(item)
                    await idle.wait()
                    tg.cancel_scope.cancel()  # every episode ended: stop the agent services
                messages = journaled.written
        finally:
            journal.close()
            if self.remote is not None:
                await self.remote.aclose()
            for backend in self.backends.values():
                await backend.aclose()
        return RunResult(
            run=self.run_name,
            outcomes=outcomes,
            skipped=skipped,
            wall_seconds=time.perf_counter() - started,
            messages=int(messages or 0),
        )

    async def _problem(self, bus: Bus, problem: PromptProblem, journal: Journal) -> EpisodeOutcome:
        ep = episode_id(self.run_name, problem.prompt_id)
        await bus.publish(
            envelope(
                Failure(stage="input", error_type="InputError", message=problem.message),
                run=self.run_name,
                episode=ep,
                sender="runtime",
                topic="episode.failure",
            )
        )
        journal.flush()
        return EpisodeOutcome(problem.prompt_id, ep, "failed")
