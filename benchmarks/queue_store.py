"""Queue store throughput: concurrent reviewers claiming and deciding through ``HumanQueue``.

Prints one JSON object. ``--reviewers`` threads each loop: pick a case they can claim (a
random one of the first 32 of ``list_cases(claimable_by=...)``), ``claim`` it, ``resolve`` it
with a request id, until every case has ``--required`` decisions. Reported: decisions/s over
the whole run and the p50/p99 latency of ``claim`` and ``resolve`` (milliseconds). This is the
API under the web page's HTTP benchmark (``benchmarks/queue.py``): the database's share.

    python benchmarks/queue_store.py [--cases 400] [--reviewers 16] [--required 1] [--url URL]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from oversight.errors import LeaseError
from oversight.escalation import CaseSubmission, Decision, HumanQueue


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=400)
    parser.add_argument("--reviewers", type=int, default=16)
    parser.add_argument("--required", type=int, default=1)
    parser.add_argument("--url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'queue.db'}"
        prefix = f"bench{uuid.uuid4().hex[:8]}_"
        queue = HumanQueue(url, table_prefix=prefix)
        submit_start = time.perf_counter()
        for i in range(args.cases):
            queue.submit(
                CaseSubmission(
                    run="bench",
                    episode=f"e{i}",
                    prompt=[{"role": "user", "content": f"question {i}"}],
                    candidates=[{"id": "c0", "text": "a" * 200}, {"id": "c1", "text": "b" * 200}],
                    triggers=["disagreement"],
                    principles=["harm"],
                    reviewers_required=args.required,
                    details={"critiques": [{"rationale": "x" * 300}] * 3},
                )
            )
        submit_s = time.perf_counter() - submit_start

        claims: list[float] = []
        resolves: list[float] = []
        conflicts = [0]
        lock = threading.Lock()

        def reviewer(name: str) -> None:
            rng = random.Random(name)
            while True:
                todo = queue.list_cases(status="open", claimable_by=name, limit=32)
                if not todo:
                    return
                case = rng.choice(todo)
                t0 = time.perf_counter()
                try:
                    queue.claim(case.id, name)
                except LeaseError:
                    with lock:
                        conflicts[0] += 1
                    continue
                t1 = time.perf_counter()
                queue.resolve(case.id, name, Decision(choice="c1"), request_id=f"{case.id}:{name}")
                t2 = time.perf_counter()
                with lock:
                    claims.append(t1 - t0)
                    resolves.append(t2 - t1)

        threads = [
            threading.Thread(target=reviewer, args=(f"reviewer-{i}",))
            for i in range(args.reviewers)
        ]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
        counts = queue.counts()
        backend = queue.store.url.get_backend_name()
        if args.url:
            queue.store.drop_all()
        queue.close()

    print(
        json.dumps(
            {
                "benchmark": "queue_store",
                "backend": backend,
                "cases": args.cases,
                "reviewers": args.reviewers,
                "reviewers_required": args.required,
                "decided": counts.decided,
                "decisions": len(resolves),
                "decisions_per_s": round(len(resolves) / elapsed, 1),
                "submits_per_s": round(args.cases / submit_s, 1),
                "claim_ms_p50": round(percentile(claims, 0.5) * 1000, 2),
                "claim_ms_p99": round(percentile(claims, 0.99) * 1000, 2),
                "resolve_ms_p50": round(percentile(resolves, 0.5) * 1000, 2),
                "resolve_ms_p99": round(percentile(resolves, 0.99) * 1000, 2),
                "resolve_ms_mean": round(statistics.fmean(resolves) * 1000, 2) if resolves else 0,
                "claim_conflicts": conflicts[0],
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
