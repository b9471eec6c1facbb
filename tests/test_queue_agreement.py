"""Agreement statistics: textbook kappa values, and reports over decided queue cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from oversight.errors import EscalationError
from oversight.escalation import CaseSubmission, Decision, HumanQueue
from oversight.escalation.agreement import (
    case_agreement,
    cohen_kappa,
    fleiss_kappa,
    queue_agreement,
)


def test_cohen_kappa_textbook_example() -> None:
    # Wikipedia "Cohen's kappa": 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa = 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_cohen_kappa_edges() -> None:
    assert cohen_kappa(["a", "b"], ["a", "b"]) == pytest.approx(1.0)
    assert cohen_kappa(["a", "b"], ["b", "a"]) == pytest.approx(-1.0)
    assert cohen_kappa([], []) is None
    assert cohen_kappa(["a", "a"], ["a", "a"]) is None  # chance agreement 1: undefined
    with pytest.raises(EscalationError, match="equally long"):
        cohen_kappa(["a"], [])


def test_fleiss_kappa_textbook_example() -> None:
    # Wikipedia "Fleiss' kappa": 10 subjects, 14 raters, 5 categories -> kappa = 0.210
    table = [
        [0, 0, 0, 0, 14],
        [0, 2, 6, 4, 2],
        [0, 0, 3, 5, 6],
        [0, 3, 9, 2, 0],
        [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0],
        [3, 2, 6, 3, 0],
        [2, 5, 3, 2, 2],
        [6, 5, 2, 1, 0],
        [0, 2, 2, 3, 7],
    ]
    ratings = [[cat for cat, n in enumerate(row) for _ in range(n)] for row in table]
    assert fleiss_kappa(ratings) == pytest.approx(0.20993, abs=1e-4)


def test_fleiss_kappa_skips_single_ratings_and_matches_cohen_for_pairs() -> None:
    pairs = [["y", "y"], ["y", "n"], ["n", "n"], ["n", "n"], ["y", "y"], ["n", "y"]]
    assert fleiss_kappa([*pairs, ["y"]]) == pytest.approx(fleiss_kappa(pairs))
    assert fleiss_kappa([["y"]]) is None
    # Fleiss with two raters equals Scott's pi, close to (not equal to) Cohen's kappa.
    value = fleiss_kappa(pairs)
    assert value is not None and 0.0 < value < 1.0


def _decide(queue: HumanQueue, episode: str, choices: list[str | None]) -> str:
    case_id = queue.submit(
        CaseSubmission(
            run="r",
            episode=episode,
            prompt=[{"role": "user", "content": "q"}],
            candidates=[{"id": "c0", "text": "a"}, {"id": "c1", "text": "b"}],
            reviewers_required=len(choices),
        )
    )
    for i, choice in enumerate(choices):
        decision = Decision(choice=choice) if choice else Decision(edited_text="own answer")
        queue.resolve(case_id, ["ann", "ben", "cat"][i], decision)
    return case_id


def test_queue_agreement_over_decided_cases(tmp_path: Path) -> None:
    with HumanQueue(f"sqlite:///{tmp_path / 'q.db'}", require_claim=False) as queue:
        agree = _decide(queue, "e1", ["c1", "c1"])
        tied = _decide(queue, "e2", ["c0", None])
        queue.resolve(tied, "boss", Decision(choice="c0"), tie_break=True)
        three = _decide(queue, "e3", ["c1", "c0", "c1"])
        single = _decide(queue, "e4", ["c0"])
        open_case = queue.submit(
            CaseSubmission(
                run="r",
                episode="open",
                prompt=[{"role": "user", "content": "q"}],
                candidates=[{"id": "c0", "text": "a"}],
            )
        )
        cases = queue.list_cases(limit=100)
        report = queue_agreement(cases)
        assert report.cases == 4
        assert report.multi_reviewer_cases == 3
        by_case = {c.case_id: c for c in report.per_case}
        assert by_case[agree].observed == 1.0
        assert by_case[tied].observed == 0.0 and by_case[tied].tie_break
        assert by_case[tied].agrees_with_final == {"ann": True, "ben": False}
        assert by_case[three].observed == pytest.approx(1 / 3)
        assert by_case[single].observed is None
        by_reviewer = {r.reviewer: r for r in report.per_reviewer}
        assert (by_reviewer["ann"].decided, by_reviewer["ann"].agreed) == (4, 4)
        assert (by_reviewer["ben"].decided, by_reviewer["ben"].agreed) == (3, 1)
        assert by_reviewer["cat"].rate == 1.0
        assert "boss" not in by_reviewer
        assert report.cohen_kappa == pytest.approx(
            cohen_kappa(["choice:c1", "choice:c0"], ["choice:c1", "edit:own answer"])
        )
        assert report.fleiss_kappa == pytest.approx(
            fleiss_kappa(
                [
                    ["choice:c1", "choice:c1"],
                    ["choice:c0", "edit:own answer"],
                    ["choice:c1", "choice:c0", "choice:c1"],
                ]
            )
        )
        with pytest.raises(EscalationError, match="decided"):
            case_agreement(queue.get(open_case))
