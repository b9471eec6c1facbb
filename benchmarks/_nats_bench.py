"""The NATS half of ``benchmarks/episodes.py``: episodes/s with two ``oversight worker``
processes serving every agent, next to the raw nats-py request/reply rate of the same server,
measured in the same run.

``ratio_to_raw`` = our episodes/s / (raw round trips/s / NATS calls per episode): the share of
the transport's own ceiling that the framework reaches (issue 13 asks for >= 0.5 against the
sequential raw rate). The raw rate is measured twice: one request at a time (what the anyio
baseline measures too) and 64 in flight (what a run at concurrency 64 can use).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from oversight.escalation import HumanQueue
from oversight.hierarchy import load_hierarchy
from oversight.paths import resolve_config
from oversight.runtime import Runtime
from oversight.transport import RemoteAgents, connect

AGENTS = "base,reviser,harm-critic,privacy-critic,quality-critic,safety,judge"
ROOT = Path(__file__).resolve().parents[1]


async def raw_nats(url: str, n: int, in_flight: int) -> tuple[float, float]:
    """Request/reply round trips per second (and per CPU-second of this process) through the
    server, a nats-py responder in this process echoing small payloads."""
    server = await connect(url, name="bench-responder")
    client = await connect(url, name="bench-client")

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await server.subscribe("bench.echo", cb=echo)
    await server.flush()
    payload = b'{"kind":"assess_request","candidate_id":"c0"}'

    async def worker(count: int) -> None:
        for _ in range(count):
            await client.request("bench.echo", payload, timeout=30)

    start, cpu = time.perf_counter(), time.process_time()
    async with anyio.create_task_group() as tg:
        for i in range(in_flight):
            tg.start_soon(worker, n // in_flight + (1 if i < n % in_flight else 0))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await client.close()
    await server.close()
    return n / elapsed, n / cpu


def start_workers(hierarchy: str, url: str, count: int) -> list[subprocess.Popen[str]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    procs = []
    command = [sys.executable, "-m", "oversight", "worker", hierarchy, "--agents", AGENTS]
    for _ in range(count):
        proc = subprocess.Popen(
            [*command, "--bus", url],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        assert proc.stderr is not None
        line = proc.stderr.readline()
        if "serving" not in line:
            raise RuntimeError(f"worker did not start: {line}{proc.stderr.read()}")
        procs.append(proc)
    return procs


def measure_nats(
    hierarchy: str, url: str, episodes: int, concurrency: int, tmp: Path, tag: str, prompts: Any
) -> dict[str, Any]:
    """One run over NATS with two worker processes; its rates and counts."""
    spec = load_hierarchy(resolve_config(hierarchy))
    workers = start_workers(hierarchy, url, 2)
    try:
        queue = HumanQueue(f"sqlite:///{tmp / f'queue-{tag}.db'}")
        remote = RemoteAgents(url, spec, wait_workers=2)
        runtime = Runtime(
            spec,
            run_name=f"bench-{tag}",
            run_dir=tmp / f"run-{tag}",
            queue=queue,
            concurrency=concurrency,
            remote=remote,
        )
        cpu = time.process_time()
        result = anyio.run(runtime.run, prompts)
        cpu = time.process_time() - cpu
        queue.close()
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            proc.communicate(timeout=60)
    counts = result.counts()
    done = counts["episodes"]
    assert counts["failed"] == 0 and done == episodes, counts
    return {
        "episodes": done,
        "episodes_per_s": done / result.wall_seconds,
        "coordinator_cpu_ms_per_episode": 1000 * cpu / done,
        "ms_per_episode": 1000 * result.wall_seconds / done,
        "nats_calls_per_episode": remote.stats.sent / done,
        "retries": remote.stats.retries,
        "duplicates": remote.stats.duplicates,
        "workers": len(remote.workers),
    }
