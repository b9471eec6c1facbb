"""The bus over NATS, against the real server on 127.0.0.1:4222: workers in other processes,
replicas sharing work, a worker killed mid-run, a worker with another configuration, bad URLs,
messages of another schema version, late answers and a worker that never answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from helpers import read_rows, write_hierarchy
from typer.testing import CliRunner

from oversight.backends import register_backend
from oversight.backends.scripted import ScriptedBackend
from oversight.cli import app
from oversight.errors import ConfigError, TransportError
from oversight.export import export_run
from oversight.hierarchy import load_hierarchy
from oversight.journal import read_journal
from oversight.messages import SCHEMA_VERSION, DraftRequest, Prompt, Turn, envelope
from oversight.prompts import load_prompts
from oversight.runtime import Runtime
from oversight.transport import (
    AgentAnswer,
    AgentCall,
    RemoteAgents,
    Worker,
    agent_subject,
    connect,
    hierarchy_hash,
    read_wire,
)

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[1]
SERVED = "base,reviser,harm-critic,quality-critic,safety,judge"
DEAD_URL = "nats://127.0.0.1:4299"  # nothing listens there


# --------------------------------------------------------------------------- helpers


class WorkerProcess:
    """``oversight worker`` in a subprocess, started and waited for until it serves."""

    def __init__(self, hierarchy: Path, url: str, agents: str = SERVED) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "oversight", "worker", str(hierarchy)]
        self.proc = subprocess.Popen(
            [*command, "--agents", agents, "--bus", url],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert self.proc.stderr is not None
        line = self.proc.stderr.readline()  # "worker host:pid: serving ..." once subscribed
        assert "serving" in line, f"worker did not start: {line}{self.proc.stderr.read()}"

    def stop(self) -> str:
        """SIGTERM, then what it printed (its count of answered requests)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err or ""


def signature(run_dir: Path) -> Counter[tuple[str, ...]]:
    """What a run journaled, without ids and times: equal for two runs exactly when nothing was
    lost or duplicated (the scripted backend and the seeded draws are deterministic)."""
    found: Counter[tuple[str, ...]] = Counter()
    for env in read_journal(run_dir / "journal.jsonl").envelopes:
        p = env.payload
        found[
            (
                env.episode,
                env.sender,
                env.kind,
                str(getattr(p, "candidate_id", "")),
                str(getattr(p, "principle_id", "")),
                str(getattr(p, "verdict", "")),
                str(getattr(p, "text", "")),
            )
        ] += 1
    return found


async def run_episodes(
    hierarchy: Path, run_dir: Path, prompts: list[Any], remote: RemoteAgents | None, **kw: Any
) -> Any:
    spec = load_hierarchy(hierarchy)
    runtime = Runtime(spec, run_name="nats", run_dir=run_dir, remote=remote, **kw)
    return await runtime.run(prompts)


def assert_clean(run_dir: Path, episodes: int) -> None:
    """Every episode finished once; no message journaled twice; one SFT row per consensus."""
    scan = read_journal(run_dir / "journal.jsonl")
    ids = [e.id for e in scan.envelopes]
    assert len(ids) == len(set(ids))
    terminal = Counter(e.episode for e in scan.envelopes if e.kind in ("consensus", "escalation"))
    assert len(terminal) == episodes and set(terminal.values()) == {1}
    assert not [e for e in scan.envelopes if e.kind == "failure"]
    export_run(run_dir)
    rows = read_rows(run_dir / "sft.jsonl")
    consensus = sum(1 for e in scan.envelopes if e.kind == "consensus")
    assert len(rows) == consensus


@pytest.fixture
def hierarchy(tmp_path: Path) -> Path:
    return write_hierarchy(tmp_path / "h.yaml", settings={"concurrency": 8})


# --------------------------------------------------------------------------- bad input


def test_unreachable_url_names_it_and_how_to_start_a_server(
    hierarchy: Path, tmp_path: Path
) -> None:
    async def go() -> None:
        with pytest.raises(TransportError, match="nats-server") as err:
            await connect(DEAD_URL, name="test", timeout=1.0)
        assert DEAD_URL in str(err.value)

    anyio.run(go)
    result = CliRunner().invoke(
        app, ["run", str(hierarchy), "--bus", DEAD_URL, "--limit", "1", "--runs-dir", str(tmp_path)]
    )
    assert result.exit_code == 2
    assert DEAD_URL in result.output and "nats-server" in result.output
    result = CliRunner().invoke(
        app, ["worker", str(hierarchy), "--agents", "judge", "--bus", DEAD_URL]
    )
    assert result.exit_code == 2
    assert DEAD_URL in result.output and "nats-server" in result.output


def test_worker_refuses_unknown_agents(hierarchy: Path) -> None:
    spec = load_hierarchy(hierarchy)
    with pytest.raises(ConfigError, match=r"no such agent.*harm-critic"):
        Worker(spec, ["harm-critc"], "nats://127.0.0.1:4222")
    with pytest.raises(ConfigError, match="answers no request"):
        Worker(spec, ["people"], "nats://127.0.0.1:4222")


def test_another_schema_version_is_refused() -> None:
    answer = AgentAnswer(worker="w").model_dump(mode="json")
    answer["schema_version"] = SCHEMA_VERSION + 1
    with pytest.raises(TransportError, match=f"schema version {SCHEMA_VERSION + 1}"):
        read_wire(json.dumps(answer).encode(), AgentAnswer, what="an answer")


def test_hash_follows_the_configuration(tmp_path: Path, hierarchy: Path) -> None:
    other = write_hierarchy(tmp_path / "o.yaml", settings={"concurrency": 8, "seed": 7})
    same = write_hierarchy(tmp_path / "s.yaml", settings={"concurrency": 8})
    h = hierarchy_hash(load_hierarchy(hierarchy))
    assert h == hierarchy_hash(load_hierarchy(same))
    assert h != hierarchy_hash(load_hierarchy(other))


# --------------------------------------------------------------------------- against the server


async def test_worker_with_another_configuration_is_an_error(
    nats_url: str, tmp_path: Path, hierarchy: Path
) -> None:
    other = write_hierarchy(tmp_path / "o.yaml", settings={"concurrency": 8, "seed": 7})
    worker = Worker(load_hierarchy(other), ["harm-critic"], nats_url)
    remote = RemoteAgents(nats_url, load_hierarchy(hierarchy), wait_workers=1)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        with pytest.raises(ConfigError, match=f"another configuration.*{worker.hash}"):
            await remote.open({})
        tg.cancel_scope.cancel()


async def test_worker_answers_a_request_of_another_version_with_a_failure(
    nats_url: str, hierarchy: Path
) -> None:
    spec = load_hierarchy(hierarchy)
    worker = Worker(spec, ["base"], nats_url)
    request = envelope(DraftRequest(), run="r", episode="e", sender="runtime", topic="agent.base")
    call = AgentCall(
        hierarchy=worker.hash,
        agent="base",
        capability="draft",
        request=request,
        prompt=Prompt(prompt_id="p", messages=(Turn(role="user", content="hi"),)),
        candidates={},
        stage="draft",
    ).model_dump(mode="json")
    call["schema_version"] = SCHEMA_VERSION + 1
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        nc = await connect(nats_url, name="test")
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        subject = agent_subject(worker.hash, "base", "draft")
        await nc.publish(subject, json.dumps(call).encode(), reply=inbox)
        while (msg := await sub.next_msg(timeout=30)).data.startswith(b'{"kind":"working"'):
            pass
        answer = read_wire(msg.data, AgentAnswer, what="answer")
        assert answer.failure is not None
        assert f"schema version {SCHEMA_VERSION + 1}" in answer.failure.message
        await nc.close()
        tg.cancel_scope.cancel()


async def test_silent_worker_fails_its_episode_and_a_late_answer_is_journaled(
    nats_url: str, tmp_path: Path
) -> None:
    """The base (in a worker) hangs on two prompts: one answers after its episode timed out
    (dropped, journaled), one never answers; the episodes before and after finish."""
    hierarchy = write_hierarchy(
        tmp_path / "h.yaml",
        base_rules=[
            {"task": "draft", "match": "LATEWORD", "hang": 7.5},
            {"task": "draft", "match": "NEVERWORD", "hang": 600},
        ],
    )
    prompts = [
        Prompt(prompt_id=pid, messages=(Turn(role="user", content=text),))
        for pid, text in [
            ("first", "What is the capital of France?"),
            ("late", "LATEWORD: name a colour"),
            ("never", "NEVERWORD: name a fruit"),
            ("after", "How do I boil an egg?"),
        ]
    ]
    spec = load_hierarchy(hierarchy)
    worker = Worker(spec, ["base"], nats_url)
    remote = RemoteAgents(nats_url, spec, wait_workers=1)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        result = await run_episodes(
            hierarchy, tmp_path / "run", prompts, remote, concurrency=1, episode_timeout=6.0
        )
        tg.cancel_scope.cancel()
    status = {o.prompt_id: o.status for o in result.outcomes}
    assert status["late"] == status["never"] == "failed"
    assert status["first"] != "failed" and status["after"] != "failed"
    assert remote.served == {"base": ("draft",)}  # the others ran in-process
    assert remote.stats.late == 1
    failures = [e for e in read_journal(tmp_path / "run" / "journal.jsonl").envelopes
                if e.kind == "failure"]  # fmt: skip
    by_type = Counter(f.payload.error_type for f in failures)
    assert by_type == {"TimeoutError": 2, "LateReply": 1}
    late = next(f for f in failures if f.payload.error_type == "LateReply")
    assert late.episode == next(o.episode for o in result.outcomes if o.prompt_id == "late")


async def test_two_worker_processes_finish_every_episode_like_in_process(
    nats_url: str, tmp_path: Path, hierarchy: Path
) -> None:
    prompts = load_prompts(None)[:24]
    await run_episodes(hierarchy, tmp_path / "local", prompts, None)
    workers = [WorkerProcess(hierarchy, nats_url) for _ in range(2)]
    try:
        remote = RemoteAgents(nats_url, load_hierarchy(hierarchy), wait_workers=2)
        result = await run_episodes(hierarchy, tmp_path / "nats", prompts, remote)
    finally:
        said = [w.stop() for w in workers]
    assert [o.status for o in result.outcomes].count("failed") == 0
    assert set(remote.served) == set(SERVED.split(","))
    assert signature(tmp_path / "nats") == signature(tmp_path / "local")
    assert_clean(tmp_path / "nats", len(prompts))
    answered = [int(s.rsplit("(", 1)[1].split()[0]) for s in said]
    assert all(n > 0 for n in answered), said  # the queue group shared the work
    assert sum(answered) >= remote.stats.answered


async def test_worker_killed_mid_run_loses_and_duplicates_nothing(
    nats_url: str, tmp_path: Path
) -> None:
    hierarchy = write_hierarchy(
        tmp_path / "h.yaml", latency=0.2, settings={"concurrency": 8}
    )  # every draft takes 0.2 s: the killed worker has requests in hand
    prompts = load_prompts(None)[:32]
    await run_episodes(hierarchy, tmp_path / "local", prompts, None)
    workers = [WorkerProcess(hierarchy, nats_url) for _ in range(2)]
    remote = RemoteAgents(
        nats_url, load_hierarchy(hierarchy), wait_workers=2, heartbeat_timeout=3.0
    )
    killed = anyio.Event()

    async def kill_after_some_episodes() -> None:
        journal = tmp_path / "nats" / "journal.jsonl"
        while not journal.exists() or journal.read_text().count('"kind":"consensus"') < 4:  # noqa: ASYNC110 (a file)
            await anyio.sleep(0.05)
        os.kill(workers[0].proc.pid, signal.SIGKILL)
        killed.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(kill_after_some_episodes)
            result = await run_episodes(hierarchy, tmp_path / "nats", prompts, remote)
    finally:
        for w in workers:
            w.stop()
    assert killed.is_set() and workers[0].proc.returncode == -signal.SIGKILL
    assert remote.stats.retries >= 1  # requests the dead worker held went to the other one
    assert [o.status for o in result.outcomes].count("failed") == 0
    assert signature(tmp_path / "nats") == signature(tmp_path / "local")
    assert_clean(tmp_path / "nats", len(prompts))


# --------------------------------------------------------------------------- what the coordinator
# builds and sends


BUILT: Counter[str] = Counter()
"""Constructions of the ``counting-scripted`` backend, by its ``label`` option."""


@register_backend("counting-scripted")
def _counting_scripted(label: str = "", **options: Any) -> ScriptedBackend:
    """The scripted backend, counting its constructions (the coordinator must build none for
    the agents workers serve)."""
    BUILT[label] += 1
    return ScriptedBackend(**options)


def counting_hierarchy(path: Path) -> Path:
    """The test hierarchy with each model on the counting backend, labelled by model name."""
    write_hierarchy(path, settings={"concurrency": 8})
    spec = yaml.safe_load(path.read_text())
    for name, model in spec["models"].items():
        model["backend"] = "counting-scripted"
        model["options"]["label"] = f"{path}:{name}"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


async def test_the_coordinator_builds_no_backend_for_the_agents_workers_serve(
    nats_url: str, tmp_path: Path
) -> None:
    """Workers serve every agent on the ``assessor`` model: the coordinator builds only the
    ``base`` model (for the base and the reviser it runs itself), and the episodes end as in
    process."""
    hierarchy = counting_hierarchy(tmp_path / "h.yaml")
    base, assessor = f"{hierarchy}:base", f"{hierarchy}:assessor"
    prompts = load_prompts(None)[:12]
    await run_episodes(hierarchy, tmp_path / "local", prompts, None)
    assert BUILT[base] == BUILT[assessor] == 1  # in process: each model once
    spec = load_hierarchy(hierarchy)
    remote_agents = ["harm-critic", "quality-critic", "safety", "judge"]
    worker = Worker(spec, remote_agents, nats_url)
    assert BUILT[assessor] == 2 and BUILT[base] == 1  # the worker built its model only
    remote = RemoteAgents(nats_url, spec, wait_workers=1)
    runtime = Runtime(spec, run_name="nats", run_dir=tmp_path / "nats", remote=remote)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        result = await runtime.run(prompts)
        tg.cancel_scope.cancel()
    assert BUILT[assessor] == 2, "the coordinator built the model of the remote agents"
    assert BUILT[base] == 2
    assert set(runtime.backends) == {"base"}
    assert set(remote.served) == set(remote_agents)
    assert all(runtime.agents[name].backend is None for name in remote_agents)
    assert runtime.agents["base"].backend is runtime.agents["reviser"].backend is not None
    assert [o.status for o in result.outcomes].count("failed") == 0
    assert signature(tmp_path / "nats") == signature(tmp_path / "local")
    assert_clean(tmp_path / "nats", len(prompts))


async def test_each_call_carries_only_what_its_role_reads(
    nats_url: str, tmp_path: Path, hierarchy: Path
) -> None:
    """A spy on the request subjects: a draft carries no candidate, the others the candidates
    they name, and only revise calls carry the episode's messages; results as in process."""
    prompts = load_prompts(None)[::3]  # benign, harmful (revised), jailbreaks, contexts
    await run_episodes(hierarchy, tmp_path / "local", prompts, None)
    spec = load_hierarchy(hierarchy)
    worker = Worker(spec, SERVED.split(","), nats_url)
    remote = RemoteAgents(nats_url, spec, wait_workers=1)
    calls: list[AgentCall] = []
    spy = await connect(nats_url, name="spy")
    sub = await spy.subscribe(f"oversight.{worker.hash}.>")  # no queue group: sees every call

    async def record() -> None:
        async for msg in sub.messages:
            calls.append(read_wire(msg.data, AgentCall, what="a call"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(record)
        await spy.flush()
        await tg.start(worker.serve)
        result = await run_episodes(hierarchy, tmp_path / "nats", prompts, remote)
        await spy.flush()
        await anyio.sleep(0.2)
        tg.cancel_scope.cancel()
    await spy.close()
    assert [o.status for o in result.outcomes].count("failed") == 0
    assert signature(tmp_path / "nats") == signature(tmp_path / "local")
    by_cap = Counter(c.capability for c in calls)
    assert by_cap["draft"] == len(prompts) and by_cap["assess"] and by_cap["revise"], by_cap
    for call in calls:
        asked = call.request.payload
        if call.capability == "revise":
            assert call.published and {"critique", "draft"} <= {e.kind for e in call.published}
            assert getattr(asked, "candidate_id", None) in call.candidates
            continue
        assert call.published == ()
        named = {getattr(asked, "candidate_id", None), *getattr(asked, "candidate_ids", ())}
        assert set(call.candidates) == named - {None}, (call.capability, call.candidates)


def test_heartbeat_flags(hierarchy: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    for command, flag in [("run", "--heartbeat-timeout"), ("worker", "--heartbeat")]:
        assert flag in runner.invoke(app, [command, "--help"], terminal_width=200).output
    result = runner.invoke(
        app,
        ["run", str(hierarchy), "--bus", DEAD_URL, "--heartbeat-timeout", "0",
         "--runs-dir", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 2 and "--heartbeat-timeout must be above 0" in result.output
    result = runner.invoke(
        app, ["worker", str(hierarchy), "--agents", "judge", "--heartbeat", "-1"]
    )
    assert result.exit_code == 2 and "--heartbeat must be above 0" in result.output


async def test_a_worker_beating_slower_than_the_timeout_is_an_error(
    nats_url: str, hierarchy: Path
) -> None:
    spec = load_hierarchy(hierarchy)
    worker = Worker(spec, ["judge"], nats_url, heartbeat=5.0)
    remote = RemoteAgents(nats_url, spec, wait_workers=1, heartbeat_timeout=2.0)
    async with anyio.create_task_group() as tg:
        await tg.start(worker.serve)
        with pytest.raises(ConfigError, match=r"every 5 s.*longer --heartbeat-timeout"):
            await remote.open({"judge": object()})
        tg.cancel_scope.cancel()
