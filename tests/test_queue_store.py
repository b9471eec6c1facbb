"""The queue's database: locked, corrupt, foreign or newer files give QueueStoreError and lose
nothing."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from oversight.errors import QueueStoreError
from oversight.escalation import CaseSubmission, HumanQueue


def submission(episode: str) -> CaseSubmission:
    return CaseSubmission(
        run="r",
        episode=episode,
        prompt=[{"role": "user", "content": "q"}],
        candidates=[{"id": "c0", "text": "a"}],
    )


def test_sqlite_settings(tmp_path: Path) -> None:
    queue = HumanQueue(f"sqlite:///{tmp_path / 'q.db'}")
    with queue, queue.store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_not_a_database_names_the_file_and_leaves_it_alone(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    content = b"definitely not sqlite " * 200
    path.write_bytes(content)
    with pytest.raises(QueueStoreError, match="not a readable SQLite database") as err:
        HumanQueue(f"sqlite:///{path}")
    assert str(path) in str(err.value)
    assert "move it aside" in str(err.value)
    assert path.read_bytes() == content


def test_locked_database_is_reported_and_nothing_is_lost(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    queue = HumanQueue(f"sqlite:///{path}", busy_timeout=0.2)
    kept = queue.submit(submission("kept"))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        with pytest.raises(QueueStoreError, match="is locked") as err:
            queue.submit(submission("blocked"))
        assert str(path) in str(err.value)
        assert queue.get(kept).episode == "kept"  # WAL: readers are not blocked
    finally:
        other.execute("ROLLBACK")
        other.close()
    again = queue.submit(submission("blocked"))
    assert {c.id for c in queue.list_cases()} == {kept, again}
    queue.close()


def test_a_foreign_table_with_our_name_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE queue_cases (id INTEGER PRIMARY KEY, note TEXT)")
    raw.execute("INSERT INTO queue_cases VALUES (1, 'precious')")
    raw.commit()
    raw.close()
    with pytest.raises(QueueStoreError, match="not an oversight queue cases table") as err:
        HumanQueue(f"sqlite:///{path}")
    assert str(path) in str(err.value) and "table prefix" in str(err.value)
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT note FROM queue_cases").fetchall() == [("precious",)]
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    raw.close()
    assert tables == {"queue_cases"}
    # Another prefix coexists with the foreign table.
    with HumanQueue(f"sqlite:///{path}", table_prefix="oq_") as queue:
        queue.submit(submission("e"))


def test_a_newer_schema_version_is_refused_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "queue.db"
    with HumanQueue(f"sqlite:///{path}") as queue:
        case_id = queue.submit(submission("e"))
    raw = sqlite3.connect(path)
    raw.execute("UPDATE queue_meta SET value = '99' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    with pytest.raises(QueueStoreError, match="schema version 99"):
        HumanQueue(f"sqlite:///{path}")
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT id FROM queue_cases").fetchall() == [(case_id,)]
    raw.close()


def test_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(QueueStoreError, match="not a database URL"):
        HumanQueue("not a url")
    with pytest.raises(QueueStoreError, match="table prefix"):
        HumanQueue(f"sqlite:///{tmp_path / 'q.db'}", table_prefix="x; drop table y")
    with pytest.raises(QueueStoreError, match="is a directory"):
        HumanQueue(f"sqlite:///{tmp_path}")
    with pytest.raises(QueueStoreError, match="unreachable") as err:
        HumanQueue("postgresql+psycopg://someone:secret@127.0.0.1:1/nodb")
    assert "secret" not in str(err.value)


def test_reopening_keeps_every_case(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with HumanQueue(url) as queue:
        ids = [queue.submit(submission(f"e{i}")) for i in range(3)]
    with HumanQueue(url) as queue:
        assert sorted(c.id for c in queue.list_cases()) == sorted(ids)
