"""The queue's database: tables, engine setup, schema checks, and error translation.

SQLAlchemy 2 Core with portable types only, so a ``sqlite:///path`` file (the default) and a
``postgresql+psycopg://...`` URL both work. SQLite runs in WAL mode with a busy timeout, foreign
keys on and ``synchronous=NORMAL`` (in WAL mode a commit survives a crash or ``kill -9`` of the
process; only a power loss or OS crash can roll back the last commits, never corrupt the file;
pass ``synchronous="FULL"`` to survive those too, at one fsync, about 5 ms, per commit). Every
write transaction on SQLite starts with ``BEGIN IMMEDIATE`` so that two writers never deadlock
on a read-to-write upgrade, and writers take turns first: threads of one process on a lock,
processes on an ``flock`` of ``<database>-writers`` (SQLite's own busy wait sleeps up to 100 ms
between tries and is unfair: under contention one writer could starve past the timeout). The
turns only order writers; ``BEGIN IMMEDIATE`` is what keeps them apart.

The per-request path (authenticate, claim, decide, release, withdraw) runs prepared SQL on the
driver's cursor (:meth:`QueueStore.raw`) inside the same transactions and locks; everything else
goes through SQLAlchemy.

Tables (names carry a prefix, ``queue_`` by default, so several queues can share a database):

``{p}meta``        key/value; ``schema_version``
``{p}cases``       one row per escalated case (prompt, candidates and details as JSON)
``{p}labels``      (case, kind, value) rows for filtering by ``principle`` / ``trigger``
``{p}slots``       ``reviewers_required`` rows per case: who holds a claim and until when
``{p}decisions``   one row per reviewer decision (unique per case and reviewer)
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import threading
import time
from collections import namedtuple
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from ..errors import QueueStoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: processes rely on SQLite's busy wait
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1
"""Version of the queue's tables; a database with another version is refused, never altered."""

DEFAULT_URL = "sqlite:///runs/queue.db"
"""Where the queue lives when neither ``--queue`` nor ``$OVERSIGHT_QUEUE`` says otherwise."""

_WRITE = "oversight_queue_write"
_PING_AFTER = 10.0
"""Seconds a pooled PostgreSQL connection may sit idle before its next checkout tests it."""


def build_tables(prefix: str) -> tuple[sa.MetaData, dict[str, sa.Table]]:
    """The queue's tables, each name starting with ``prefix``."""
    md = sa.MetaData()
    meta = sa.Table(
        f"{prefix}meta",
        md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )
    cases = sa.Table(
        f"{prefix}cases",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("run", sa.String(200), nullable=False),
        sa.Column("episode", sa.String(200), nullable=False),
        sa.Column("prompt_id", sa.String(200), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("reviewers_required", sa.Integer, nullable=False),
        sa.Column("proposed", sa.String(200), nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("prompt", sa.JSON, nullable=False),
        sa.Column("candidates", sa.JSON, nullable=False),
        sa.Column("triggers", sa.JSON, nullable=False),
        sa.Column("principles", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("message_ids", sa.JSON, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("decided_at", sa.Double, nullable=True),
        sa.Column("withdrawn_reason", sa.Text, nullable=True),
        sa.Column("final_decision_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("run", "episode", name=f"{prefix}uq_case_run_episode"),
    )
    sa.Index(f"{prefix}ix_case_order", cases.c.status, cases.c.priority, cases.c.created_at)
    labels = sa.Table(
        f"{prefix}labels",
        md,
        sa.Column(
            "case_id",
            sa.String(64),
            sa.ForeignKey(f"{prefix}cases.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
    )
    sa.Index(f"{prefix}ix_label_value", labels.c.kind, labels.c.value)
    slots = sa.Table(
        f"{prefix}slots",
        md,
        sa.Column(
            "case_id",
            sa.String(64),
            sa.ForeignKey(f"{prefix}cases.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("reviewer", sa.String(200), nullable=True),
        sa.Column("claimed_at", sa.Double, nullable=True),
        sa.Column("expires_at", sa.Double, nullable=True),
        sa.Column("decided", sa.Boolean, nullable=False, default=False),
        # NULLs are distinct in a unique constraint (SQLite and PostgreSQL), so free slots
        # coexist, but one reviewer can never hold two slots of the same case.
        sa.UniqueConstraint("case_id", "reviewer", name=f"{prefix}uq_slot_reviewer"),
    )
    decisions = sa.Table(
        f"{prefix}decisions",
        md,
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "case_id",
            sa.String(64),
            sa.ForeignKey(f"{prefix}cases.id", ondelete="CASCADE"),
            nullable=False,
            index=True,
        ),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("choice", sa.String(200), nullable=True),
        sa.Column("edited_text", sa.Text, nullable=True),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("principle_tags", sa.JSON, nullable=False),
        sa.Column("request_id", sa.String(200), nullable=True, unique=True),
        sa.Column("tie_break", sa.Boolean, nullable=False),
        sa.Column("case_status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.UniqueConstraint("case_id", "reviewer", "tie_break", name=f"{prefix}uq_decision"),
        # Order of decisions within a case, assigned under the case's lock.
        sa.UniqueConstraint("case_id", "seq", name=f"{prefix}uq_decision_seq"),
    )
    return md, {
        "meta": meta,
        "cases": cases,
        "labels": labels,
        "slots": slots,
        "decisions": decisions,
    }


def from_json(value: Any) -> Any:
    """A JSON column's value as Python: SQLite's driver returns the text, psycopg the value."""
    return json.loads(value) if isinstance(value, str) else value


@lru_cache(maxsize=256)
def _row_type(columns: tuple[str, ...]) -> Any:
    return namedtuple("Row", columns)


class RawTransaction:
    """Statements run on the driver's own cursor inside one transaction of
    :meth:`QueueStore.raw`: the queue's per-request path (authenticate, claim, decide), where
    SQLAlchemy's per-statement and per-transaction bookkeeping cost several times the
    database's own work. SQL is written once with ``:name`` parameters
    (:meth:`QueueStore.prepare`); rows come back as named tuples."""

    def __init__(self, cursor: Any, row_makers: dict[str, Any]) -> None:
        self._cursor = cursor
        self._makers = row_makers  # the store's row constructor per SQL text

    def all(self, sql: str, params: Mapping[str, Any]) -> list[Any]:
        """Every row of a query."""
        self._cursor.execute(sql, params)
        return self._rows(self._cursor, sql)

    def all_of(self, queries: Sequence[tuple[str, Mapping[str, Any]]]) -> list[list[Any]]:
        """Every row of each query, run in order (each sees what the earlier ones did, e.g.
        a row lock taken by the first). On PostgreSQL they travel together in psycopg's
        pipeline mode, with the transaction's ``BEGIN``: one round trip instead of one each."""
        pipeline = getattr(self._cursor.connection, "pipeline", None)
        if pipeline is None:  # SQLite: in-process, nothing to save
            return [self.all(sql, params) for sql, params in queries]
        connection = self._cursor.connection
        cursors = [connection.cursor() for _ in queries]
        try:
            with pipeline():
                for cursor, (sql, params) in zip(cursors, queries, strict=True):
                    cursor.execute(sql, params)
            return [
                self._rows(cursor, sql) for cursor, (sql, _) in zip(cursors, queries, strict=True)
            ]
        finally:
            for cursor in cursors:
                cursor.close()

    def _rows(self, cursor: Any, sql: str) -> list[Any]:
        rows = cursor.fetchall()
        if not rows:
            return []
        make = self._makers.get(sql)
        if make is None:
            make = self._makers[sql] = _row_type(tuple(d[0] for d in cursor.description))._make
        return [make(r) for r in rows]

    def one_or_none(self, sql: str, params: Mapping[str, Any]) -> Any:
        """The first row of a query, or None."""
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def run(self, sql: str, params: Mapping[str, Any]) -> int:
        """Run a statement that changes rows; returns how many it changed."""
        self._cursor.execute(sql, params)
        return int(self._cursor.rowcount)

    def run_all(self, statements: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Run statements whose row counts the caller does not need, in order. On PostgreSQL
        they travel together (psycopg's pipeline mode: one round trip instead of one each);
        an error in any of them surfaces here and fails the transaction as usual."""
        pipeline = getattr(self._cursor.connection, "pipeline", None)
        if pipeline is None or len(statements) < 2:  # SQLite: in-process, nothing to save
            for sql, params in statements:
                self._cursor.execute(sql, params)
            return
        with pipeline():
            for sql, params in statements:
                self._cursor.execute(sql, params)


def _open_turns_file(database: Path) -> int | None:
    """The file whose ``flock`` SQLite writers of several processes take turns on (None where
    it cannot be opened, e.g. a read-only folder, or without ``fcntl``)."""
    if fcntl is None:
        return None
    try:
        return os.open(f"{database}-writers", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None


def _ping_idle_connections(engine: Engine) -> None:
    """Test a pooled connection before reuse when it sat idle for more than ``_PING_AFTER``
    seconds (a server restart in the meantime leaves it dead); the pool then replaces a dead
    one. SQLAlchemy's ``pool_pre_ping`` tests every checkout: one more round trip per
    transaction, which under load is most of a claim's database time."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < _PING_AFTER:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:
            raise sa.exc.DisconnectionError(f"idle connection is dead: {exc}") from exc


def _where(url: sa.URL) -> str:
    """A name for the database that is safe to print (file path, or URL without password)."""
    if url.get_backend_name() == "sqlite":
        return f"queue file {url.database or ':memory:'}"
    return f"queue database {url.render_as_string(hide_password=True)}"


class QueueStore:
    """An engine plus the queue's tables; translates driver errors into ``QueueStoreError``.

    ``busy_timeout`` (seconds) is how long a SQLite writer waits for another writer before
    the operation fails with a ``QueueStoreError`` that says the file is locked.
    """

    def __init__(
        self,
        url: str,
        *,
        table_prefix: str = "queue_",
        busy_timeout: float = 5.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ):
        try:
            self.url = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise QueueStoreError(
                f"queue URL {url!r} is not a database URL; use sqlite:///path/to/queue.db or "
                "postgresql+psycopg://user@host:5432/db"
            ) from exc
        self.where = _where(self.url)
        self.busy_timeout = busy_timeout
        if synchronous not in ("NORMAL", "FULL"):
            raise QueueStoreError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        self.synchronous = synchronous
        self._write_lock = threading.Lock()
        self._turns_fd: int | None = None
        self._row_makers: dict[str, Any] = {}
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,30}", table_prefix):
            raise QueueStoreError(
                f"table prefix {table_prefix!r} must be letters, digits and '_' (at most 31), "
                "starting with a letter or '_'"
            )
        self.table_prefix = table_prefix
        """Prefix of every table name; tables that live beside the queue use it too."""
        self.metadata, self.tables = build_tables(table_prefix)
        self.engine = self._create_engine()
        self._dbapi: Any = self.engine.dialect.loaded_dbapi
        self._write_engine = self.engine.execution_options(**{_WRITE: True})
        # PostgreSQL reads see one snapshot across the statements that build a case.
        self._read_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="REPEATABLE READ")
        )
        for attempt in range(2):
            try:
                self._prepare()
                break
            except QueueStoreError:
                # Two processes creating the tables of a fresh PostgreSQL database at once:
                # the loser's CREATE fails; looking again finds the winner's tables.
                if attempt or self.is_sqlite:
                    raise

    # -- engine -------------------------------------------------------------------------

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            try:
                engine = sa.create_engine(self.url)
            except (ImportError, sa.exc.NoSuchModuleError) as exc:
                raise QueueStoreError(
                    f"{self.where}: the database driver is not installed ({exc}); for "
                    "PostgreSQL run: pip install 'oversight[postgres]'"
                ) from exc
            _ping_idle_connections(engine)
            return engine
        database = self.url.database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                raise QueueStoreError(
                    f"{self.where} is a directory; point the queue URL at a file, e.g. "
                    f"sqlite:///{path / 'queue.db'}"
                )
            self._turns_fd = _open_turns_file(path)
        engine = sa.create_engine(self.url, connect_args={"timeout": self.busy_timeout})
        busy_ms = int(self.busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
            # Take BEGIN away from pysqlite so that we can emit BEGIN IMMEDIATE ourselves.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {busy_ms}")
                cursor.execute("PRAGMA foreign_keys = ON")
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute(f"PRAGMA synchronous = {self.synchronous}")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _prepare(self) -> None:
        """Create missing tables, then refuse a database whose tables or version differ."""
        with self.translate_errors():
            insp = sa.inspect(self.engine)
            existing = set(insp.get_table_names())
            for name, table in self.tables.items():
                if table.name not in existing:
                    continue
                have = {c["name"] for c in insp.get_columns(table.name)}
                want = {c.name for c in table.columns}
                if not want <= have:
                    missing = ", ".join(sorted(want - have))
                    raise QueueStoreError(
                        f"{self.where}: table {table.name!r} exists but is not an oversight "
                        f"queue {name} table (missing columns: {missing}). Nothing was changed; "
                        "point the queue at another database or use another table prefix"
                    )
            with self.write() as conn:
                self.metadata.create_all(conn)
                meta = self.tables["meta"]
                version = conn.execute(
                    sa.select(meta.c.value).where(meta.c.key == "schema_version")
                ).scalar_one_or_none()
                if version is None:
                    conn.execute(
                        sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION))
                    )
                elif version != str(SCHEMA_VERSION):
                    raise QueueStoreError(
                        f"{self.where} has queue schema version {version}, but this version of "
                        f"oversight reads version {SCHEMA_VERSION}. Nothing was changed; open it "
                        "with the oversight version that wrote it, or start a new queue file"
                    )

    # -- transactions -------------------------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
        if not self.is_sqlite:
            with self.translate_errors(), self._write_engine.begin() as conn:
                yield conn
            return
        with self._writers_turn(), self.translate_errors(), self._write_engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _writers_turn(self) -> Iterator[None]:
        """Wait for this writer's turn on SQLite: threads of this process take turns on a
        lock, processes (``serve --workers N``) on an ``flock`` of ``<database>-writers``
        beside the file, polled every few milliseconds. SQLite's own busy wait backs off to
        100 ms sleeps, which made the slowest claims of several server processes ten times
        slower than the median; ``BEGIN IMMEDIATE`` and the busy timeout still guard writers
        that do not take turns (other programs)."""
        deadline = time.monotonic() + self.busy_timeout
        if not self._write_lock.acquire(timeout=self.busy_timeout):
            raise self._busy()
        try:
            if self._turns_fd is None:
                yield
                return
            delay = 0.0002
            while True:
                try:
                    fcntl.flock(self._turns_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise self._busy() from None
                    time.sleep(delay)
                    delay = min(2 * delay, 0.002)
            try:
                yield
            finally:
                fcntl.flock(self._turns_fd, fcntl.LOCK_UN)
        finally:
            self._write_lock.release()

    def prepare(self, sql: str) -> str:
        """SQL written with ``:name`` parameters and a ``{lock}`` marker after a ``SELECT``
        that must lock its rows, in this database's dialect (``FOR UPDATE`` on PostgreSQL;
        SQLite locks the whole database with ``BEGIN IMMEDIATE`` instead)."""
        sql = sql.replace("{lock}", "" if self.is_sqlite else " FOR UPDATE")
        return sql if self.is_sqlite else re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)

    @contextlib.contextmanager
    def raw(self, *, write: bool, single: bool = False) -> Iterator[RawTransaction]:
        """One transaction on a pooled driver connection, committed on success: the same
        locking as :meth:`write` (this process's writer lock, then ``BEGIN IMMEDIATE`` on
        SQLite) and the same error translation, without SQLAlchemy's per-statement work.

        ``single=True`` (reads only) promises one statement, which runs without an explicit
        transaction: a statement is atomic on its own, and on PostgreSQL this is one round
        trip instead of three (``BEGIN``, the statement, ``COMMIT``)."""
        if single and write:
            raise ValueError("single=True is for one reading statement")
        with contextlib.ExitStack() as turn:
            if write and self.is_sqlite:
                turn.enter_context(self._writers_turn())
            with self.translate_errors():
                conn = self.engine.raw_connection()
                autocommit = single and not self.is_sqlite
                if autocommit:
                    conn.dbapi_connection.autocommit = True  # type: ignore[union-attr]
                try:
                    cursor = conn.cursor()
                    try:
                        if self.is_sqlite and not single:
                            cursor.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                        yield RawTransaction(cursor, self._row_makers)
                        conn.commit()
                    except self._dbapi.Error as exc:
                        if self.engine.dialect.is_disconnect(exc, conn.dbapi_connection, cursor):
                            conn.invalidate(exc)  # the pool opens a new one next time
                        else:
                            conn.rollback()
                        raise sa.exc.DBAPIError.instance(
                            None, None, exc, self._dbapi.Error, dialect=self.engine.dialect
                        ) from exc
                    except BaseException:
                        conn.rollback()
                        raise
                    finally:
                        cursor.close()
                finally:
                    if autocommit:
                        self._end_autocommit(conn)
                    conn.close()  # back to the pool

    @staticmethod
    def _end_autocommit(conn: Any) -> None:
        """Give a connection back to the pool in the usual transaction mode."""
        dbapi_connection = conn.dbapi_connection
        if dbapi_connection is not None:  # None: invalidated, the pool drops it
            with contextlib.suppress(Exception):  # a broken one: the pool finds out
                dbapi_connection.autocommit = False

    def _busy(self) -> QueueStoreError:
        return QueueStoreError(
            f"{self.where} is busy: other writers of this queue (threads or server processes) "
            f"held it for more than {self.busy_timeout:g} s; retry, or raise busy_timeout"
        )

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        """One read transaction."""
        with self.translate_errors(), self._read_engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def translate_errors(self) -> Iterator[None]:
        """Turn driver errors into ``QueueStoreError`` messages a person can act on."""
        try:
            yield
        except QueueStoreError:
            raise
        except sa.exc.IntegrityError:
            raise  # handled by the caller (races on unique constraints)
        except sa.exc.DBAPIError as exc:
            raise self._explain(exc) from exc

    def _explain(self, exc: sa.exc.DBAPIError) -> QueueStoreError:
        text = str(exc.orig) if exc.orig is not None else str(exc)
        lowered = text.lower()
        if "locked" in lowered or "busy" in lowered:
            return QueueStoreError(
                f"{self.where} is locked: another process held a write lock for more than "
                f"{self.busy_timeout:g} s. Nothing was written; close the other program (for "
                "example a sqlite3 shell inside a transaction) and retry"
            )
        if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
            return QueueStoreError(
                f"{self.where} is not a readable SQLite database ({text}). It was left as it "
                "is: move it aside (or restore a backup) and point the queue at a new file"
            )
        if "unable to open" in lowered or "readonly" in lowered or "read-only" in lowered:
            return QueueStoreError(
                f"{self.where} cannot be opened for writing ({text}); check the path and its "
                "permissions"
            )
        if "connect" in lowered or "connection" in lowered:
            return QueueStoreError(
                f"{self.where} is unreachable ({text.strip()}); check that the server runs and "
                "that the URL's host, port, user and database are right"
            )
        return QueueStoreError(f"{self.where}: database error: {text}")

    def drop_all(self) -> None:
        """Drop the queue's tables (tests and throwaway queues only: deletes every case)."""
        with self.write() as conn:
            self.metadata.drop_all(conn)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self._turns_fd is not None:
            os.close(self._turns_fd)
            self._turns_fd = None


__all__ = [
    "DEFAULT_URL",
    "SCHEMA_VERSION",
    "QueueStore",
    "RawTransaction",
    "build_tables",
    "from_json",
]
