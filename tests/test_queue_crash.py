"""``kill -9`` a real process while it decides cases in a loop: nothing is lost, nothing is
applied twice, and a rerun with the same request ids finishes the job."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from oversight.escalation import CaseSubmission, HumanQueue

DECIDER = """
import sys
from oversight.escalation import Decision, HumanQueue

queue = HumanQueue(sys.argv[1], require_claim=False)
for case_id in open(sys.argv[2]).read().split():
    for reviewer in ("ann", "bob"):
        queue.resolve(
            case_id, reviewer, Decision(choice="c1", rationale="ok"),
            request_id=f"{case_id}:{reviewer}",
        )
    print(case_id, flush=True)
print("done", flush=True)
"""

CASES = 60


def _check_consistent(queue: HumanQueue) -> dict[str, list[str]]:
    """Every case is whole: 0 or 1 decision -> open, 2 agreeing decisions -> decided."""
    decision_ids = {}
    cases = queue.list_cases(limit=10_000)
    assert len(cases) == CASES
    for case in cases:
        reviewers = [d.reviewer for d in case.decisions]
        assert len(reviewers) == len(set(reviewers)) <= 2
        assert [d.request_id for d in case.decisions] == [f"{case.id}:{r}" for r in reviewers]
        assert case.status == ("decided" if len(reviewers) == 2 else "open")
        assert (case.final_decision_id is not None) == (case.status == "decided")
        assert case.open_slots == 2 - len(reviewers)
        decision_ids[case.id] = [d.id for d in case.decisions]
    return decision_ids


def test_kill_9_while_deciding_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with HumanQueue(url) as queue:
        ids = [
            queue.submit(
                CaseSubmission(
                    run="crash",
                    episode=f"e{i}",
                    prompt=[{"role": "user", "content": f"question {i}"}],
                    candidates=[{"id": "c0", "text": "a"}, {"id": "c1", "text": "b"}],
                    reviewers_required=2,
                )
            )
            for i in range(CASES)
        ]
    order = tmp_path / "order.txt"
    order.write_text("\n".join(ids))
    script = tmp_path / "decider.py"
    script.write_text(DECIDER)

    before: dict[str, list[str]] = {}
    for kill_after in (5, 15, 25):
        proc = subprocess.Popen(
            [sys.executable, str(script), url, str(order)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        done = 0
        while done < kill_after:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            done += 1
        proc.kill()  # SIGKILL: no cleanup, possibly mid-transaction
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        with HumanQueue(url) as queue:
            now = _check_consistent(queue)
        for case_id, decisions in before.items():
            assert now[case_id][: len(decisions)] == decisions  # nothing lost or rewritten
        before = now

    finish = subprocess.run(
        [sys.executable, str(script), url, str(order)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert finish.returncode == 0, finish.stderr
    assert finish.stdout.splitlines()[-1] == "done"
    with HumanQueue(url) as queue:
        final = _check_consistent(queue)
        assert queue.counts().decided == CASES
    for case_id, decisions in before.items():
        assert final[case_id][: len(decisions)] == decisions
    assert sum(len(d) for d in final.values()) == 2 * CASES
