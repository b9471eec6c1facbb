"""The journal survives torn writes and names corrupt lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from oversight.errors import JournalError
from oversight.journal import Journal, read_journal
from oversight.messages import Consensus, Draft, envelope


def _env(kind: str, episode: str) -> object:
    payload = (
        Draft(candidate_id="c0", text="hi", model="m")
        if kind == "draft"
        else Consensus(candidate_id="c0", text="hi")
    )
    return envelope(payload, run="r", episode=episode, sender="s", topic="t")


def test_torn_last_line_is_skipped_and_resume_keeps_finished_episodes(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal, _ = Journal.open(path)
    for env in (_env("draft", "e1"), _env("consensus", "e1"), _env("draft", "e2")):
        journal.write(env)  # type: ignore[arg-type]
    journal.close()
    with path.open("a") as fh:
        fh.write('{"schema_version":1,"id":"x","run":"r","episo')  # killed mid-write
    scan = read_journal(path)
    assert scan.torn_tail and len(scan.envelopes) == 3
    assert scan.finished_episodes() == {"e1"}
    journal, kept = Journal.open(path, resume=True)
    journal.close()
    assert [e.episode for e in kept.envelopes] == ["e1", "e1"]
    assert [e.episode for e in read_journal(path).envelopes] == ["e1", "e1"]


def test_a_corrupt_line_in_the_middle_is_named(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    lines = [
        _env("draft", "e1").model_dump_json(),
        "not json at all",  # type: ignore[attr-defined]
        _env("consensus", "e1").model_dump_json(),
    ]  # type: ignore[attr-defined]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(JournalError, match=r"journal.jsonl:2: corrupt journal line"):
        read_journal(path)
    scan = read_journal(path, strict=False)
    assert len(scan.envelopes) == 2 and scan.bad_lines[0][0] == 2


def test_an_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal, _ = Journal.open(path)
    journal.write(_env("draft", "e1"))  # type: ignore[arg-type]
    journal.close()
    with pytest.raises(JournalError, match="--resume"):
        Journal.open(path)
