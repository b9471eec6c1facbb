"""``benchmarks/queue_http.py`` end to end on a small SQLite queue: its reviewer processes (raw
HTTP/1.1 client, bearer sessions) claim and decide every case exactly once."""

from __future__ import annotations

from pathlib import Path

from _bench import load_benchmark
from conftest import import_or_fail

import_or_fail("uvicorn", "the review server needs the web extra")


def test_reviewer_processes_decide_every_case_once(tmp_path: Path) -> None:
    bench = load_benchmark("queue_http")
    result = bench.run_one(
        f"sqlite:///{tmp_path / 'queue.db'}",
        code="this tree",
        pythonpath=bench.REPO,
        workers=1,
        cases=12,
        reviewers=3,
    )
    assert result["errors"] == 0, result["error_examples"]
    assert result["exactly_once"] and result["decided"] == 12
    assert result["claim_ms_p99"] is not None and result["decide_ms_p99"] is not None
