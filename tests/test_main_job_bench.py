"""benchmarks/main_job.py on the scripted default hierarchy (no timings asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml
from _bench import load_benchmark


def test_variants_rewrite_settings_and_model_options(tmp_path: Path) -> None:
    bench = load_benchmark("main_job")
    out = bench._variant_hierarchy(
        Path("roles/embedded.yaml"),
        {"max_new_tokens": "96", "concurrency": "32", "options.max_batch_size": "32"},
        tmp_path / "v.yaml",
    )
    spec = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert spec["settings"]["max_new_tokens"] == 96 and spec["settings"]["concurrency"] == 32
    assert spec["models"]["smollm"]["options"]["max_batch_size"] == 32
    assert "max_batch_size" not in spec["models"]["guard"].get("options", {})  # not a generator
    assert Path(spec["constitution"]).is_absolute() and Path(spec["constitution"]).is_file()


def test_the_median_run_counts_and_the_report_reads_the_run(
    tmp_path: Path, monkeypatch: object
) -> None:
    bench = load_benchmark("main_job")
    out = tmp_path / "report.json"
    argv = ["main_job.py", "roles/default.yaml", "--limit", "3", "--repeats", "3",
            "--variant", "short:max_new_tokens=8", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)  # type: ignore[attr-defined]
    bench.main()
    report = json.loads(out.read_text(encoding="utf-8"))
    assert set(report["variants"]) == {"this", "short"}
    for variant in report["variants"].values():
        runs = variant["runs_s"]
        assert len(runs) == 3 and variant["wall_s_process"] == sorted(runs)[1]
        assert variant["counts"]["episodes"] == 3 and variant["counts"]["failed"] == 0
        assert sum(variant["drafts_ended"].values()) == 3
