"""The run journal: every envelope of a run, one JSON line each, append-only.

Lines are written as envelopes are published and flushed when an episode finishes, so a crash
loses at most the episodes in flight. :func:`read_journal` tolerates a torn last line (a
``kill -9`` mid-write) and reports any other corrupt line with its number; :meth:`Journal.open`
with ``resume=True`` compacts the file to the episodes that finished, so the run can redo the
rest without duplicates.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from .errors import JournalError
from .messages import ENVELOPE_ADAPTER, Envelope

TERMINAL_KINDS = frozenset({"consensus", "escalation", "failure"})
"""An episode whose journal holds one of these kinds has finished."""


@dataclass
class JournalScan:
    """What :func:`read_journal` found."""

    envelopes: list[Envelope] = field(default_factory=list)
    """Valid envelopes, in file order."""
    torn_tail: bool = False
    """The last line was cut off (a crash mid-write); it was skipped."""
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    """(line number, error) for corrupt lines that were skipped (``strict=False``)."""

    def by_episode(self) -> dict[str, list[Envelope]]:
        groups: dict[str, list[Envelope]] = defaultdict(list)
        for env in self.envelopes:
            groups[env.episode].append(env)
        return dict(groups)

    def finished_episodes(self) -> set[str]:
        return {e.episode for e in self.envelopes if e.kind in TERMINAL_KINDS}


def read_journal(path: str | Path, *, strict: bool = True) -> JournalScan:
    """Read a journal. A torn final line is skipped; any other bad line raises
    :class:`JournalError` naming the line (or is collected in ``bad_lines`` when
    ``strict=False``)."""
    path = Path(path)
    scan = JournalScan()
    if not path.exists():
        return scan
    with path.open("rb") as fh:
        raw_lines = fh.read().split(b"\n")
    last_index = len(raw_lines) - 1
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            scan.envelopes.append(ENVELOPE_ADAPTER.validate_json(raw))
        except ValidationError as exc:
            is_tail = number - 1 == last_index  # no newline after it: cut mid-write
            if is_tail:
                scan.torn_tail = True
                continue
            reason = exc.errors()[0].get("msg", str(exc)) if exc.errors() else str(exc)
            if strict:
                raise JournalError(
                    f"{path}:{number}: corrupt journal line ({reason}). Move the line out of the "
                    "file, or re-run with --resume to rebuild the journal from its valid lines."
                ) from None
            scan.bad_lines.append((number, reason))
    return scan


class Journal:
    """Append-only writer of envelopes to ``journal.jsonl``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fh: IO[str] | None = None
        self.written = 0

    @classmethod
    def open(cls, path: str | Path, *, resume: bool = False) -> tuple[Journal, JournalScan]:
        """Open for appending. With ``resume``, keep only finished episodes (compacting the file
        atomically) and return what was kept; without it, refuse to overwrite a non-empty
        journal."""
        journal = cls(path)
        journal.path.parent.mkdir(parents=True, exist_ok=True)
        scan = JournalScan()
        if journal.path.exists() and journal.path.stat().st_size > 0:
            if not resume:
                raise JournalError(
                    f"{journal.path} already holds a run. Use --resume to finish it, or choose "
                    "another --name."
                )
            scan = read_journal(journal.path, strict=False)
            finished = scan.finished_episodes()
            kept = [e for e in scan.envelopes if e.episode in finished]
            tmp = journal.path.with_suffix(".jsonl.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                for env in kept:
                    fh.write(env.model_dump_json() + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, journal.path)
            scan = JournalScan(envelopes=kept, torn_tail=scan.torn_tail, bad_lines=scan.bad_lines)
        journal._fh = journal.path.open("a", encoding="utf-8")
        return journal, scan

    @property
    def file(self) -> IO[str]:
        """The open file, for a :class:`~oversight.bus.JournalInterceptor` to write lines to."""
        if self._fh is None:
            raise JournalError(f"{self.path}: journal is closed")
        return self._fh

    def write(self, env: Envelope) -> None:
        if self._fh is None:
            raise JournalError(f"{self.path}: journal is closed")
        self._fh.write(env.model_dump_json() + "\n")
        self.written += 1

    def write_line(self, line: str) -> None:
        """Append an already-serialised envelope (the bus serialises once)."""
        if self._fh is None:
            raise JournalError(f"{self.path}: journal is closed")
        self._fh.write(line + "\n")
        self.written += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None


def iter_lines(path: str | Path) -> Iterator[dict]:
    """Journal lines as plain dicts (for tools that do not need validation)."""
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
