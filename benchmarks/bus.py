"""Bus throughput: typed envelopes to 4 subscribers vs a raw anyio memory-stream baseline.

Prints one JSON object. Every figure is *delivered* messages per second (a message published
once to 4 subscribers counts 4 deliveries), timed from the first publish until every consumer
has drained its stream. The raw baseline uses the same 4 consumers on plain anyio memory
object streams with plain tuples and the same ``send_nowait``-then-``send`` producer.

Envelopes are real pydantic models, validated when built. The main figures build them before
the clock starts (the bus's cost, not pydantic's); ``*_with_construction`` builds each envelope
inside the timed loop as a producer would. Journal runs append JSON lines to a real file.
Rates are wall-clock; ``cpu`` repeats them per CPU-second of this process, which is the steadier
figure on a machine shared with other work.

    python benchmarks/bus.py [--messages 20000] [--buffer 256] [--repeats 3]
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
from collections.abc import Callable
from pathlib import Path

import anyio
from anyio.abc import TaskStatus

from oversight.bus import Bus, JournalInterceptor
from oversight.messages import Draft, Envelope, envelope

SUBSCRIBERS = 4
PATTERNS = ("bench.draft", "bench.*", "bench.#", "#")
TEXT = "A short answer of about the length a small model writes for a benign question. " * 2


def build(i: int) -> Envelope:
    return envelope(
        Draft(candidate_id="c0", text=TEXT, model="bench"),
        run="bench",
        episode=f"e{i}",
        sender="base",
        topic="bench.draft",
    )


async def run_raw(n: int, buffer: int) -> tuple[float, float]:
    streams = [anyio.create_memory_object_stream[object](buffer) for _ in range(SUBSCRIBERS)]
    counts = [0] * SUBSCRIBERS

    async def consume(k: int, *, task_status: TaskStatus[None]) -> None:
        async with streams[k][1] as receive:
            task_status.started()
            async for _item in receive:
                counts[k] += 1

    items = [("bench.draft", f"e{i}", TEXT) for i in range(n)]
    async with anyio.create_task_group() as tg:
        for k in range(SUBSCRIBERS):
            await tg.start(consume, k)
        start, cpu = time.perf_counter(), time.process_time()
        sends = [s for s, _r in streams]
        for item in items:
            for send in sends:
                try:
                    send.send_nowait(item)
                except anyio.WouldBlock:
                    await send.send(item)
        for send in sends:
            send.close()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert sum(counts) == n * SUBSCRIBERS, counts
    return n * SUBSCRIBERS / elapsed, n * SUBSCRIBERS / cpu


async def run_bus(
    n: int, buffer: int, journal_path: Path | None, construct: bool
) -> tuple[float, float, int]:
    journal = JournalInterceptor.to_file(journal_path) if journal_path else None
    bus = Bus([journal] if journal else [], buffer=buffer)
    counts = [0] * SUBSCRIBERS

    async def consume(k: int, *, task_status: TaskStatus[None]) -> None:
        async with bus.subscribe(PATTERNS[k]) as sub:
            task_status.started()
            async for _env in sub:
                counts[k] += 1

    envelopes: list[Envelope] = [] if construct else [build(i) for i in range(n)]
    make: Callable[[int], Envelope] = build if construct else envelopes.__getitem__
    async with anyio.create_task_group() as tg:
        for k in range(SUBSCRIBERS):
            await tg.start(consume, k)
        start, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            await bus.publish(make(i))
        await bus.aclose()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if journal is not None:
        journal.close()
    assert sum(counts) == n * SUBSCRIBERS, counts
    total = bus.statistics().total()
    assert total.delivered == n * SUBSCRIBERS and total.dropped == 0, total
    return n * SUBSCRIBERS / elapsed, n * SUBSCRIBERS / cpu, total.max_queue_depth


async def main(args: argparse.Namespace) -> dict[str, object]:
    n, buffer = args.messages, args.buffer
    raw: list[tuple[float, float]] = []
    bus: list[tuple[float, float]] = []
    journal: list[tuple[float, float]] = []
    built: list[tuple[float, float]] = []
    depth = journal_bytes = 0
    await run_raw(1000, buffer)  # warm-up: imports, allocator, first-call paths
    await run_bus(1000, buffer, None, construct=False)
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            # Interleaved, so background load on a shared machine hits every variant alike.
            raw.append(await run_raw(n, buffer))
            *rates, depth = await run_bus(n, buffer, None, construct=False)
            bus.append((rates[0], rates[1]))
            path = Path(tmp) / f"journal{r}.jsonl"
            *rates, _ = await run_bus(n, buffer, path, construct=False)
            journal.append((rates[0], rates[1]))
            lines = sum(1 for _ in path.open(encoding="utf-8"))
            assert lines == n, (lines, n)
            journal_bytes = path.stat().st_size
            path2 = Path(tmp) / f"built{r}.jsonl"
            *rates, _ = await run_bus(n, buffer, path2, construct=True)
            built.append((rates[0], rates[1]))

    def med(runs: list[tuple[float, float]], which: int = 0) -> float:
        return statistics.median(r[which] for r in runs)

    return {
        "benchmark": "bus",
        "messages": n,
        "subscribers": SUBSCRIBERS,
        "buffer": buffer,
        "repeats": args.repeats,
        "raw_delivered_per_s": round(med(raw)),
        "bus_delivered_per_s": round(med(bus)),
        "bus_ratio_to_raw": round(med(bus) / med(raw), 3),
        "bus_journal_delivered_per_s": round(med(journal)),
        "bus_journal_ratio_to_raw": round(med(journal) / med(raw), 3),
        "bus_journal_with_construction_delivered_per_s": round(med(built)),
        "cpu": {
            "raw_delivered_per_cpu_s": round(med(raw, 1)),
            "bus_delivered_per_cpu_s": round(med(bus, 1)),
            "bus_journal_delivered_per_cpu_s": round(med(journal, 1)),
            "bus_journal_with_construction_delivered_per_cpu_s": round(med(built, 1)),
        },
        "journal_bytes_per_message": round(journal_bytes / n),
        "max_queue_depth": depth,
        "targets": {"bus_ratio_to_raw": 0.5, "bus_journal_delivered_per_s": 40000},
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--buffer", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    result = anyio.run(main, parser.parse_args())
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
