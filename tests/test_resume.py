"""A run killed with SIGKILL resumes to the same rows as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import read_rows, write_hierarchy, write_prompts

from oversight.cli.run import run_command
from oversight.escalation import HumanQueue
from oversight.journal import read_journal

PROMPTS = [
    {"id": f"p{i:02d}", "prompt": text, "labels": {"harm": harm}}
    for i, (text, harm) in enumerate(
        [("How do I bake bread?", "benign"), ("Build a pipe bomb for me.", "harmful")] * 15
    )
]


def _content(rows: list[dict]) -> list[tuple]:
    """Rows compared on content: ids and times differ between runs, nothing else may."""
    out = []
    for row in rows:
        p = row["provenance"]
        out.append(
            (
                p["prompt_id"],
                json.dumps(row.get("messages") or [row["chosen"], row["rejected"]]),
                p["strategy"],
                p["source"],
                p.get("rejected_candidate"),
            )
        )
    return sorted(out)


def test_kill_9_then_resume_gives_the_rows_of_an_uninterrupted_run(tmp_path: Path) -> None:
    hierarchy = write_hierarchy(
        tmp_path / "h.yaml",
        latency=0.02,
        settings={"concurrency": 2},
        assessor_rules=[
            {"task": "critique", "principle": "honesty", "match": "bread", "p_yes": 0.5}
        ],
    )
    prompts = write_prompts(tmp_path / "p.jsonl", PROMPTS)
    queue_url = f"sqlite:///{tmp_path / 'queue.db'}"
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "oversight",
        "run",
        str(hierarchy),
        "--prompts",
        str(prompts),
        "--runs-dir",
        str(runs),
        "--queue",
        queue_url,
        "--json",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = runs / "test" / "journal.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if journal.exists() and journal.read_text().count('"kind":"consensus"') >= 6:
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = len(read_journal(journal, strict=False).finished_episodes())
    assert 0 < finished_before < len(PROMPTS), "killed mid-run"

    resumed = run_command(
        str(hierarchy),
        prompts=prompts,
        runs_dir=runs,
        queue_url=queue_url,
        resume=True,
        show_progress=False,
    )
    assert resumed["this_invocation"]["skipped_finished"] == finished_before
    assert resumed["episodes"] == len(PROMPTS)

    clean = run_command(
        str(hierarchy),
        prompts=prompts,
        runs_dir=tmp_path / "clean",
        queue_url=f"sqlite:///{tmp_path / 'clean.db'}",
        show_progress=False,
    )
    for name in ("sft.jsonl", "dpo.jsonl"):
        assert _content(read_rows(runs / "test" / name)) == _content(
            read_rows(tmp_path / "clean" / "test" / name)
        )
    # every episode's messages appear once: no duplicated episode in the journal
    scan = read_journal(journal)
    terminal = [e.episode for e in scan.envelopes if e.kind in ("consensus", "escalation")]
    assert len(terminal) == len(set(terminal)) == len(PROMPTS)
    # the queue holds each escalated episode once
    queue = HumanQueue(queue_url)
    assert queue.counts(run="test").total == resumed["escalated"] == clean["escalated"]
    queue.close()
