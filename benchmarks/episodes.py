"""Episodes per second: the scripted backend on roles/default.yaml, every agent reached through
the bus, against a raw anyio memory-stream baseline measured in the same run.

    python benchmarks/episodes.py [--episodes 2000] [--concurrency 64] [--repeats 3]
        [--out benchmarks/results/episodes.json]

The headline is the one configuration of issue 13: concurrency 64, in process, message
validation on, the journal written and flushed per episode, escalated cases submitted to a
SQLite queue. The scripted backend answers at once, so the time measured is the framework's own
(messages, bus, agent services, coordinator, decision core, journal, queue). Concurrency 1 is
printed too, for the per-episode latency.

The baseline is the raw rate of request/reply round trips between two tasks over a pair of
anyio memory object streams (plain tuples): the ceiling of any in-process bus on this machine.
``ratio_to_raw`` divides our request rate (episodes/s x requests per episode) by it.

With ``--nats URL`` the same hierarchy also runs over NATS with two ``oversight worker``
processes serving every agent, next to the raw nats-py request/reply rate of that server, both
measured in this run (see ``benchmarks/_nats_bench.py``); ``--skip-in-process`` measures only
that half (and the raw anyio rate).

    python benchmarks/episodes.py --nats nats://127.0.0.1:4222 --nats-episodes 400

Every figure is the median of ``--repeats`` runs, as wall-clock rates and per CPU-second of this
process (steadier on a shared machine). The JSON names the CPU model and flags and the load
average at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from oversight.escalation import HumanQueue
from oversight.hierarchy import load_hierarchy
from oversight.messages import TRANSPORT_KINDS, Envelope, Prompt
from oversight.paths import resolve_config
from oversight.prompts import load_prompts
from oversight.runtime import Runtime

HIERARCHY = "roles/default.yaml"
FLAGS = ("avx", "avx2", "avx512f", "fma", "sse4_2", "aes", "sha_ni", "hypervisor")


def machine() -> dict[str, Any]:
    """CPU model, its relevant flags, core count and Python, from /proc/cpuinfo."""
    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return {
        "cpu_model": model,
        "cpu_flags": [f for f in FLAGS if f in flags],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def prompt_set(n: int) -> list[Prompt]:
    """The built-in prompts, repeated under new ids up to ``n``."""
    base = [p for p in load_prompts() if isinstance(p, Prompt)]
    return [
        p.model_copy(update={"prompt_id": f"{p.prompt_id}#{i}"})
        for i in range(n // len(base) + 1)
        for p in base
    ][:n]


class TransportCounter:
    """Counts the requests to agent services (an interceptor placed after the journal)."""

    name = "transport-counter"

    def __init__(self) -> None:
        self.requests = 0

    def on_publish(self, env: Envelope) -> Envelope:
        if env.payload.kind in TRANSPORT_KINDS and env.payload.kind != "reply":
            self.requests += 1
        return env


def measure(concurrency: int, episodes: int, tmp: Path, tag: str) -> dict[str, Any]:
    """One run of ``episodes`` episodes; its rates and counts."""
    spec = load_hierarchy(resolve_config(HIERARCHY))
    queue = HumanQueue(f"sqlite:///{tmp / f'queue-{tag}.db'}")
    counter = TransportCounter()
    runtime = Runtime(
        spec,
        run_name=f"bench-{tag}",
        run_dir=tmp / f"run-{tag}",
        queue=queue,
        concurrency=concurrency,
        interceptors=[counter],
    )
    prompts = prompt_set(episodes)
    cpu = time.process_time()
    result = anyio.run(runtime.run, prompts)
    cpu = time.process_time() - cpu
    queue.close()
    counts = result.counts()
    done = counts["episodes"]
    assert counts["failed"] == 0 and done == episodes, counts
    return {
        "episodes": done,
        "escalated": counts["escalated"],
        "episodes_per_s": done / result.wall_seconds,
        "episodes_per_cpu_s": done / cpu,
        "ms_per_episode": 1000 * result.wall_seconds / done,
        "cpu_ms_per_episode": 1000 * cpu / done,
        "messages_per_episode": counts["messages"] / done,
        "requests_per_episode": counter.requests / done,
    }


async def raw_roundtrips(n: int) -> tuple[float, float]:
    """Request/reply round trips per second (and per CPU-second) between two tasks over anyio
    memory object streams carrying plain tuples."""
    requests_send, requests_receive = anyio.create_memory_object_stream[tuple[int, str]](64)
    replies_send, replies_receive = anyio.create_memory_object_stream[tuple[int, str]](64)

    async def server(*, task_status: TaskStatus[None]) -> None:
        async with requests_receive, replies_send:
            task_status.started()
            async for number, text in requests_receive:
                await replies_send.send((number, text))

    async with anyio.create_task_group() as tg:
        await tg.start(server)
        start, cpu = time.perf_counter(), time.process_time()
        async with requests_send, replies_receive:
            for i in range(n):
                await requests_send.send((i, "assess c0"))
                await replies_receive.receive()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    return n / elapsed, n / cpu


def median(runs: list[dict[str, Any]], key: str, digits: int = 2) -> float:
    return round(statistics.median(r[key] for r in runs), digits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--roundtrips", type=int, default=50_000)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--nats", default=None, help="also measure over NATS at this URL")
    parser.add_argument("--nats-episodes", type=int, default=400)
    parser.add_argument("--nats-roundtrips", type=int, default=5_000)
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    load_start = os.getloadavg()
    headline: list[dict[str, Any]] = []
    single: list[dict[str, Any]] = []
    raw: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            raw.append(anyio.run(raw_roundtrips, args.roundtrips))
            if args.skip_in_process:
                continue
            headline.append(measure(args.concurrency, args.episodes, Path(tmp), f"c{r}"))
            single.append(measure(1, max(args.episodes // 10, 50), Path(tmp), f"s{r}"))
    if args.skip_in_process:
        headline = single = [{k: 0.0 for k in ("episodes_per_s", "episodes_per_cpu_s",
                    "ms_per_episode", "cpu_ms_per_episode", "messages_per_episode",
                    "requests_per_episode")}]  # fmt: skip
    raw_rate = statistics.median(x[0] for x in raw)
    raw_cpu = statistics.median(x[1] for x in raw)
    requests = median(headline, "requests_per_episode")
    eps, eps_cpu = median(headline, "episodes_per_s"), median(headline, "episodes_per_cpu_s")
    report = {
        "benchmark": "episodes",
        "command": "python " + " ".join(sys.argv),
        "configuration": (
            f"scripted backend, {HIERARCHY}, concurrency {args.concurrency}, in process, every "
            "agent reached through the bus (request/reply), validation on, journal flushed per "
            "episode, escalations submitted to a SQLite queue"
        ),
        "machine": machine(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "headline": {
            "episodes_per_s": eps,
            "episodes_per_cpu_s": eps_cpu,
            "ms_per_episode": median(headline, "ms_per_episode", 3),
            "cpu_ms_per_episode": median(headline, "cpu_ms_per_episode", 3),
            "messages_per_episode": median(headline, "messages_per_episode"),
            "requests_per_episode": requests,
            "goal_episodes_per_s": 2000,
        },
        "concurrency_1": {
            "episodes_per_s": median(single, "episodes_per_s"),
            "ms_per_episode": median(single, "ms_per_episode", 3),
            "cpu_ms_per_episode": median(single, "cpu_ms_per_episode", 3),
        },
        "baseline_anyio_stream": {
            "roundtrips_per_s": round(raw_rate),
            "roundtrips_per_cpu_s": round(raw_cpu),
            "ratio_to_raw": round(eps * requests / raw_rate, 4),
            "ratio_to_raw_cpu": round(eps_cpu * requests / raw_cpu, 4),
        },
        "runs": {"headline": headline, "concurrency_1": single, "raw": raw},
        "nats": nats_report(args) if args.nats else None,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    if args.skip_in_process:  # no in-process figures were measured: say so, not zeros
        report["headline"] = report["concurrency_1"] = None
        report["baseline_anyio_stream"]["ratio_to_raw"] = None
        report["baseline_anyio_stream"]["ratio_to_raw_cpu"] = None
        report["runs"]["headline"] = report["runs"]["concurrency_1"] = []
    if report["nats"] is not None:
        report["nats"]["raw_anyio_stream_roundtrips_per_s"] = round(raw_rate)
    text = json.dumps(report, indent=2)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


def nats_report(args: argparse.Namespace) -> dict[str, Any]:
    """Episodes/s over NATS with two worker processes, and the raw nats-py rates (medians of
    ``--repeats``)."""
    from _nats_bench import measure_nats, raw_nats

    runs: list[dict[str, Any]] = []
    raw_seq: list[tuple[float, float]] = []
    raw_par: list[tuple[float, float]] = []
    prompts = prompt_set(args.nats_episodes)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            raw_seq.append(anyio.run(raw_nats, args.nats, args.nats_roundtrips, 1))
            raw_par.append(anyio.run(raw_nats, args.nats, args.nats_roundtrips, 64))
            runs.append(
                measure_nats(HIERARCHY, args.nats, args.nats_episodes, args.concurrency,
                             Path(tmp), f"n{r}", prompts)
            )  # fmt: skip
    eps = median(runs, "episodes_per_s")
    calls = median(runs, "nats_calls_per_episode")
    seq, par = statistics.median(x[0] for x in raw_seq), statistics.median(x[0] for x in raw_par)
    return {
        "configuration": (
            f"{HIERARCHY}, scripted backend, concurrency {args.concurrency}, two `oversight "
            "worker` processes serving every agent over NATS on this machine, the coordinator "
            "in this process (journal, queue); raw: nats-py request/reply through the same "
            "server, responder in this process"
        ),
        "url": args.nats,
        "episodes_per_s": eps,
        "ms_per_episode": median(runs, "ms_per_episode", 3),
        "coordinator_cpu_ms_per_episode": median(runs, "coordinator_cpu_ms_per_episode", 3),
        "nats_calls_per_episode": calls,
        "raw_nats_roundtrips_per_s": {"sequential": round(seq), "64_in_flight": round(par)},
        "ratio_to_raw": {
            "sequential": round(eps / (seq / calls), 4),
            "64_in_flight": round(eps / (par / calls), 4),
            "goal": 0.5,
        },
        "raw_anyio_stream_roundtrips_per_s": None,  # filled by main()
        "runs": {"episodes": runs, "raw_sequential": raw_seq, "raw_64_in_flight": raw_par},
    }


if __name__ == "__main__":
    main()
