"""The human escalation queue manager: cases, claims with leases, decisions by one or more
reviewers. The data it stores and returns (``Case``, ``Decision``, ...) is in
:mod:`oversight.escalation.models`; the names are re-exported here so old imports keep working.

``HumanQueue(url)`` is shaped like Inspect AI's approval manager: ``submit`` a case and get its
id, ``await wait(id)`` for the decided case, reviewers ``claim`` (a lease that expires) and
``resolve``; ``withdraw``; ``on_change`` for in-process notifications. Methods are synchronous
(blocking database work); async code calls them through ``anyio.to_thread.run_sync``.

Concurrency: every state change is one database transaction that first locks the case row
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so two reviewers racing
for the last claim or decision see each other: exactly one wins. A decision is one transaction,
so a crash or ``kill -9`` never leaves half a decision, and a retried ``request_id`` applies once.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import CaseNotFound, EscalationError, LeaseError
from ..messages import Turn, new_id
from .models import CASE_STATUSES as CASE_STATUSES
from .models import TERMINAL_STATUSES as TERMINAL_STATUSES
from .models import Candidate as Candidate
from .models import Case as Case
from .models import CaseStatus as CaseStatus
from .models import CaseSubmission as CaseSubmission
from .models import Decision as Decision
from .models import DecisionRecord as DecisionRecord
from .models import EventKind as EventKind
from .models import FinalDecision as FinalDecision
from .models import Lease as Lease
from .models import QueueCounts as QueueCounts
from .models import QueueEvent as QueueEvent
from .models import final_decision as final_decision
from .store import DEFAULT_URL, QueueStore, RawTransaction, from_json

logger = logging.getLogger(__name__)

_CHUNK = 500
"""Case ids per ``IN (...)`` query, under every driver's limit on bound parameters."""


def _dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _outcome(keys: Sequence[str], required: int) -> int | None:
    """Index of the standing decision when a strict majority agrees, else None (a tie)."""
    top, count = Counter(keys).most_common(1)[0]
    if count * 2 > required:
        return keys.index(top)
    return None


class _Statements:
    """The reading statements, built once with bound parameters: SQLAlchemy then reuses their
    cache keys and compiled forms."""

    def __init__(self, t: dict[str, sa.Table]) -> None:
        cases, slots, decisions = t["cases"], t["slots"], t["decisions"]
        p = sa.bindparam
        self.case = sa.select(cases).where(cases.c.id == p("b_case"))
        self.case_by_episode = sa.select(cases.c.id).where(
            cases.c.run == p("b_run"), cases.c.episode == p("b_episode")
        )
        ids: sa.BindParameter[Any] = p("b_ids", expanding=True)
        self.slots_of = (
            sa.select(slots)
            .where(
                slots.c.case_id.in_(ids),
                slots.c.reviewer.is_not(None),
                slots.c.decided.is_(False),
                slots.c.expires_at > p("b_now"),
            )
            .order_by(slots.c.case_id, slots.c.slot)
        )
        self.decisions_of = (
            sa.select(decisions)
            .where(decisions.c.case_id.in_(ids))
            .order_by(decisions.c.case_id, decisions.c.seq)
        )


_DECISION_COLUMNS = (
    "id, case_id, seq, reviewer, choice, edited_text, rationale, principle_tags, request_id, "
    "tie_break, case_status, created_at"
)


class _ChangeSQL:
    """The statements of every state change (claim, decide, release, withdraw), as SQL text
    for :meth:`QueueStore.raw`: each request runs a handful of them, and on the driver's
    cursor they cost a fraction of SQLAlchemy's execution path. ``{lock}`` becomes
    ``FOR UPDATE`` on PostgreSQL."""

    def __init__(self, store: QueueStore) -> None:
        t = store.tables
        cases, slots, decisions = t["cases"].name, t["slots"].name, t["decisions"].name
        q = store.prepare
        self.lock_case = q(
            f"SELECT id, status, reviewers_required FROM {cases} WHERE id = :case{{lock}}"
        )
        self.lock_case_candidates = q(
            f"SELECT id, status, reviewers_required, candidates FROM {cases} "
            f"WHERE id = :case{{lock}}"
        )
        self.slots = q(
            f"SELECT slot, reviewer, expires_at, decided FROM {slots} "
            "WHERE case_id = :case ORDER BY slot"
        )
        # The case's decisions and, in the same round trip, an earlier use of the request id
        # (on any case: a request id may be applied once in the whole queue).
        self.decisions = q(
            f"SELECT {_DECISION_COLUMNS} FROM {decisions} "
            "WHERE case_id = :case OR request_id = :request ORDER BY seq"
        )
        take = (
            f"UPDATE {slots} SET reviewer = :reviewer, claimed_at = :now, expires_at = :expires "
            "WHERE case_id = :case AND slot = :slot AND decided = :no AND "
        )
        self.take_free = q(take + "reviewer IS NULL")
        self.renew_own = q(take + "reviewer = :reviewer")
        self.take_expired = q(take + "reviewer = :holder AND expires_at <= :now")
        self.mark_decided = q(
            f"UPDATE {slots} SET decided = :yes, expires_at = :now "
            "WHERE case_id = :case AND slot = :slot"
        )
        self.release = q(
            f"UPDATE {slots} SET reviewer = NULL, claimed_at = NULL, expires_at = NULL "
            "WHERE case_id = :case AND reviewer = :reviewer AND decided = :no"
        )
        self.release_all = q(
            f"UPDATE {slots} SET reviewer = NULL, claimed_at = NULL, expires_at = NULL "
            "WHERE case_id = :case AND decided = :no"
        )
        self.insert_decision = q(
            f"INSERT INTO {decisions} ({_DECISION_COLUMNS}) VALUES (:id, :case_id, :seq, "
            ":reviewer, :choice, :edited_text, :rationale, :principle_tags, :request_id, "
            ":tie_break, :case_status, :created_at)"
        )
        self.set_status = q(
            f"UPDATE {cases} SET status = :status, updated_at = :now, final_decision_id = :final, "
            "decided_at = :decided_at WHERE id = :case"
        )
        self.withdraw = q(
            f"UPDATE {cases} SET status = 'withdrawn', withdrawn_reason = :reason, "
            "updated_at = :now WHERE id = :case"
        )


class HumanQueue:
    """The human escalation queue (see docs/queue.md).

    ``url``: ``sqlite:///path/queue.db`` (default ``sqlite:///runs/queue.db``; the parent folder
    is created) or ``postgresql+psycopg://user@host/db``. ``lease_seconds``: default claim
    length. ``require_claim=False`` lets ``resolve`` claim implicitly. ``admins``: reviewers
    allowed to break ties (None: the caller checks, e.g. the web app's accounts).
    ``synchronous``: SQLite's setting; ``NORMAL`` survives a crash of the process, ``FULL``
    also a power loss (one fsync per commit). ``clock`` returns the time in seconds (injectable
    for tests).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        lease_seconds: float = 900.0,
        require_claim: bool = True,
        admins: Collection[str] | None = None,
        table_prefix: str = "queue_",
        busy_timeout: float = 5.0,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lease_seconds <= 0:
            raise EscalationError(f"lease_seconds must be positive, got {lease_seconds}")
        self.store = QueueStore(
            url, table_prefix=table_prefix, busy_timeout=busy_timeout, synchronous=synchronous
        )
        self.url = url
        self.lease_seconds = float(lease_seconds)
        self.require_claim = require_claim
        self.admins = frozenset(admins) if admins is not None else None
        self._clock = clock
        self._t = self.store.tables
        self._sql = _Statements(self._t)
        self._change = _ChangeSQL(self.store)
        self._listeners: list[Callable[[QueueEvent], None]] = []
        self._listeners_lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------

    def close(self) -> None:
        """Release database connections."""
        self.store.dispose()

    def __enter__(self) -> HumanQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HumanQueue({self.store.where})"

    # -- notifications ------------------------------------------------------------------

    def on_change(self, callback: Callable[[QueueEvent], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after every submit, claim, release, decision and withdrawal
        made through this object; returns a function that unsubscribes. Callbacks run in the
        thread that made the change; exceptions they raise are logged, never propagated."""
        with self._listeners_lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._listeners_lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    def _notify(self, event: QueueEvent) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(event)
            except Exception:
                logger.exception("queue on_change callback %r failed", callback)

    # -- submit -------------------------------------------------------------------------

    def submit(self, case: CaseSubmission) -> str:
        """Store a case and return its id; the same ``(run, episode)`` returns the existing id."""
        cases = self._t["cases"]
        now = self._clock()
        case_id = new_id()
        try:
            with self.store.write() as conn:
                existing = self._existing_id(conn, case.run, case.episode)
                if existing is not None:
                    return existing
                conn.execute(
                    sa.insert(cases).values(
                        id=case_id,
                        run=case.run,
                        episode=case.episode,
                        prompt_id=case.prompt_id,
                        status="open",
                        priority=case.priority,
                        reviewers_required=case.reviewers_required,
                        proposed=case.proposed,
                        reason=case.reason,
                        prompt=[t.model_dump() for t in case.prompt],
                        candidates=[c.model_dump() for c in case.candidates],
                        triggers=list(case.triggers),
                        principles=list(case.principles),
                        details=case.details,
                        message_ids=list(case.message_ids),
                        created_at=now,
                        updated_at=now,
                    )
                )
                labels = {("trigger", t) for t in case.triggers}
                labels |= {("principle", p) for p in case.principles}
                if labels:
                    conn.execute(
                        sa.insert(self._t["labels"]),
                        [{"case_id": case_id, "kind": k, "value": v} for k, v in sorted(labels)],
                    )
                conn.execute(
                    sa.insert(self._t["slots"]),
                    [
                        {"case_id": case_id, "slot": i, "decided": False}
                        for i in range(case.reviewers_required)
                    ],
                )
        except sa.exc.IntegrityError:
            # Another process submitted the same episode at the same moment.
            with self.store.read() as conn:
                existing = self._existing_id(conn, case.run, case.episode)
            if existing is None:
                raise
            return existing
        self._notify(QueueEvent(kind="submit", case_id=case_id, status="open"))
        return case_id

    def _existing_id(self, conn: Connection, run: str, episode: str) -> str | None:
        return conn.execute(
            self._sql.case_by_episode, {"b_run": run, "b_episode": episode}
        ).scalar_one_or_none()

    # -- reading ------------------------------------------------------------------------

    def get(self, case_id: str) -> Case:
        """The case with its claims and decisions (``CaseNotFound`` when there is none)."""
        with self.store.read() as conn:
            rows = conn.execute(self._sql.case, {"b_case": case_id}).all()
            if not rows:
                raise CaseNotFound(f"no case {case_id!r} in {self.store.where}")
            return self._build(conn, rows)[0]

    def complete_id(self, prefix: str) -> str:
        """The full id of the one case whose id starts with ``prefix`` (as git does for
        commits): ``CaseNotFound`` when none or several match."""
        cases = self._t["cases"]
        if not prefix:
            raise CaseNotFound("empty case id; give the id (or its first characters)")
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.store.read() as conn:
            exact = conn.execute(sa.select(cases.c.id).where(cases.c.id == prefix)).first()
            if exact is not None:
                return prefix
            found = (
                conn.execute(
                    sa.select(cases.c.id)
                    .where(cases.c.id.like(f"{escaped}%", escape="\\"))
                    .order_by(cases.c.id)
                    .limit(5)
                )
                .scalars()
                .all()
            )
        if len(found) == 1:
            return str(found[0])
        if not found:
            raise CaseNotFound(f"no case {prefix!r} in {self.store.where}")
        raise CaseNotFound(
            f"case id {prefix!r} is ambiguous (matches {', '.join(found)}...); give more characters"
        )

    def list_cases(
        self,
        status: str | Sequence[str] | None = None,
        run: str | None = None,
        principle: str | None = None,
        trigger: str | None = None,
        *,
        claimable_by: str | None = None,
        claimed_by: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[Case]:
        """Cases by priority (highest first), then age (oldest first); every match unless
        ``limit`` is given.

        Filters combine with AND: ``status`` (one or several of ``open``, ``decided``, ``tie``,
        ``withdrawn``), ``run``, ``principle``, ``trigger``; ``claimable_by=NAME``: open cases
        that reviewer has not decided and could claim now (or already holds);
        ``claimed_by=NAME``: cases where that reviewer holds an unexpired claim.
        """
        cases = self._t["cases"]
        query = sa.select(cases).where(*self._filters(status, run, principle, trigger))
        query = query.where(*self._reviewer_filters(claimable_by, claimed_by))
        query = query.order_by(cases.c.priority.desc(), cases.c.created_at, cases.c.id)
        if limit is not None:
            query = query.limit(max(0, limit))
        if offset:
            query = query.offset(max(0, offset))
        with self.store.read() as conn:
            return self._build(conn, conn.execute(query).all())

    def count_cases(
        self,
        status: str | Sequence[str] | None = None,
        run: str | None = None,
        principle: str | None = None,
        trigger: str | None = None,
    ) -> int:
        """How many cases ``list_cases`` would return with these filters and no limit."""
        cases = self._t["cases"]
        query = sa.select(sa.func.count()).select_from(cases)
        query = query.where(*self._filters(status, run, principle, trigger))
        with self.store.read() as conn:
            return int(conn.execute(query).scalar_one())

    def counts(self, run: str | None = None) -> QueueCounts:
        """How many cases are open, claimed, decided, tied and withdrawn."""
        cases, slots = self._t["cases"], self._t["slots"]
        now = self._clock()
        where = [cases.c.run == run] if run is not None else []
        with self.store.read() as conn:
            grouped = sa.select(cases.c.status, sa.func.count()).where(*where)
            by_status: dict[str, int] = {
                str(s): int(n) for s, n in conn.execute(grouped.group_by(cases.c.status)).all()
            }
            claimed = conn.execute(
                sa.select(sa.func.count(sa.distinct(slots.c.case_id)))
                .select_from(slots.join(cases, cases.c.id == slots.c.case_id))
                .where(*where, cases.c.status == "open", *self._active(now))
            ).scalar_one()
        values = {s: int(by_status.get(s, 0)) for s in CASE_STATUSES}
        return QueueCounts(**values, claimed=int(claimed), total=sum(values.values()))

    def final_decision(self, case: Case | str) -> FinalDecision | None:
        """The standing decision of a decided case (None otherwise); accepts a case or its id."""
        return final_decision(self.get(case) if isinstance(case, str) else case)

    def _filters(
        self,
        status: str | Sequence[str] | None,
        run: str | None,
        principle: str | None,
        trigger: str | None,
    ) -> list[sa.ColumnElement[bool]]:
        cases, labels = self._t["cases"], self._t["labels"]
        where: list[sa.ColumnElement[bool]] = []
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            unknown = sorted(set(wanted) - set(CASE_STATUSES))
            if unknown:
                raise EscalationError(
                    f"unknown case status {unknown}; use one of {list(CASE_STATUSES)}"
                )
            where.append(cases.c.status.in_(wanted))
        if run is not None:
            where.append(cases.c.run == run)
        for kind, value in (("principle", principle), ("trigger", trigger)):
            if value is not None:
                where.append(
                    sa.exists().where(
                        labels.c.case_id == cases.c.id,
                        labels.c.kind == kind,
                        labels.c.value == value,
                    )
                )
        return where

    def _reviewer_filters(
        self, claimable_by: str | None, claimed_by: str | None
    ) -> list[sa.ColumnElement[bool]]:
        cases, slots, decisions = self._t["cases"], self._t["slots"], self._t["decisions"]
        now = self._clock()
        where: list[sa.ColumnElement[bool]] = []
        if claimed_by is not None:
            where.append(
                sa.exists().where(
                    slots.c.case_id == cases.c.id,
                    slots.c.reviewer == claimed_by,
                    *self._active(now),
                )
            )
        if claimable_by is not None:
            where.append(cases.c.status == "open")
            where.append(
                ~sa.exists().where(
                    decisions.c.case_id == cases.c.id, decisions.c.reviewer == claimable_by
                )
            )
            where.append(
                sa.exists().where(
                    slots.c.case_id == cases.c.id,
                    slots.c.decided.is_(False),
                    sa.or_(
                        slots.c.reviewer.is_(None),
                        slots.c.reviewer == claimable_by,
                        slots.c.expires_at <= now,
                    ),
                )
            )
        return where

    def _active(self, now: float) -> list[sa.ColumnElement[bool]]:
        slots = self._t["slots"]
        return [
            slots.c.reviewer.is_not(None),
            slots.c.decided.is_(False),
            slots.c.expires_at > now,
        ]

    def _build(self, conn: Connection, rows: Sequence[sa.Row[Any]]) -> list[Case]:
        if not rows:
            return []
        ids = [r.id for r in rows]
        now = self._clock()
        leases: dict[str, list[Lease]] = {i: [] for i in ids}
        decided: dict[str, list[DecisionRecord]] = {i: [] for i in ids}
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            for s in conn.execute(self._sql.slots_of, {"b_ids": chunk, "b_now": now}):
                leases[s.case_id].append(self._lease(s))
            for d in conn.execute(self._sql.decisions_of, {"b_ids": chunk}):
                decided[d.case_id].append(self._record(d))
        return [
            Case(
                id=r.id,
                run=r.run,
                episode=r.episode,
                prompt_id=r.prompt_id,
                status=r.status,
                priority=r.priority,
                reviewers_required=r.reviewers_required,
                prompt=tuple(Turn(**t) for t in r.prompt),
                candidates=tuple(Candidate(**c) for c in r.candidates),
                proposed=r.proposed,
                triggers=tuple(r.triggers),
                principles=tuple(r.principles),
                details=r.details,
                message_ids=tuple(r.message_ids),
                reason=r.reason,
                created_at=_dt(r.created_at),
                updated_at=_dt(r.updated_at),
                decided_at=_dt(r.decided_at),
                withdrawn_reason=r.withdrawn_reason,
                final_decision_id=r.final_decision_id,
                leases=tuple(leases[r.id]),
                decisions=tuple(decided[r.id]),
            )
            for r in rows
        ]

    @staticmethod
    def _lease(s: sa.Row[Any]) -> Lease:
        return Lease(
            case_id=s.case_id,
            reviewer=s.reviewer,
            slot=s.slot,
            claimed_at=_dt(s.claimed_at),
            expires_at=_dt(s.expires_at),
        )

    @staticmethod
    def _record(d: Any) -> DecisionRecord:
        return DecisionRecord(
            id=d.id,
            case_id=d.case_id,
            reviewer=d.reviewer,
            choice=d.choice,
            edited_text=d.edited_text,
            rationale=d.rationale,
            principle_tags=tuple(from_json(d.principle_tags)),
            request_id=d.request_id,
            tie_break=bool(d.tie_break),
            case_status=d.case_status,
            created_at=_dt(d.created_at),
        )

    # -- claims -------------------------------------------------------------------------

    def _lock_case(self, tx: RawTransaction, case_id: str, *, candidates: bool = False) -> Any:
        """Read and lock the case row (id, status, reviewers_required, and the candidates when
        asked) for the rest of the transaction."""
        sql = self._change.lock_case_candidates if candidates else self._change.lock_case
        row = tx.one_or_none(sql, {"case": case_id})
        if row is None:
            raise CaseNotFound(f"no case {case_id!r} in {self.store.where}")
        return row

    def _lock_case_and_slots(self, tx: RawTransaction, case_id: str) -> tuple[Any, list[Any]]:
        """:meth:`_lock_case`, then the case's slots read under that lock (sent together)."""
        params = {"case": case_id}
        found, places = tx.all_of([(self._change.lock_case, params), (self._change.slots, params)])
        if not found:
            raise CaseNotFound(f"no case {case_id!r} in {self.store.where}")
        return found[0], places

    def _take_slot(
        self,
        tx: RawTransaction,
        case: Any,
        places: list[Any],
        reviewer: str,
        now: float,
        expires: float,
    ) -> Lease:
        """Renew the reviewer's own place or take a free (or expired) one; ``LeaseError`` if
        every place is held. Runs inside the transaction that locked the case; ``places`` are
        the case's slot rows read in that transaction."""
        if case.status != "open":
            extra = " (an admin must break the tie)" if case.status == "tie" else ""
            raise LeaseError(f"case {case.id} is {case.status}{extra}; it cannot be claimed")
        mine = [p for p in places if p.reviewer == reviewer]
        if mine and mine[0].decided:
            raise LeaseError(f"reviewer {reviewer!r} has already decided case {case.id}")
        if mine:
            candidates = mine
        else:
            candidates = [
                p
                for p in places
                if not p.decided and (p.reviewer is None or (p.expires_at or 0.0) <= now)
            ]
        for place in candidates:
            # Compare-and-swap: only succeeds if nobody took the place since we looked.
            params = {
                "case": case.id,
                "slot": place.slot,
                "reviewer": reviewer,
                "now": now,
                "expires": expires,
                "no": False,
            }
            if place.reviewer is None:
                taken = tx.run(self._change.take_free, params)
            elif place.reviewer == reviewer:
                taken = tx.run(self._change.renew_own, params)
            else:
                taken = tx.run(self._change.take_expired, {**params, "holder": place.reviewer})
            if taken == 1:
                return Lease(
                    case_id=case.id,
                    reviewer=reviewer,
                    slot=place.slot,
                    claimed_at=_dt(now),
                    expires_at=_dt(expires),
                )
        holders = sorted(
            p.reviewer
            for p in places
            if p.reviewer is not None and not p.decided and (p.expires_at or 0.0) > now
        )
        raise LeaseError(
            f"case {case.id} needs {case.reviewers_required} reviewer(s) and every place is "
            f"taken (claimed by {holders} or decided); try again after a lease expires"
        )

    def claim(self, case_id: str, reviewer: str, lease_seconds: float | None = None) -> Lease:
        """Claim a case (or renew your claim) for ``lease_seconds`` (default: the queue's).

        ``LeaseError`` when every one of the case's ``reviewers_required`` places is held by
        others, the reviewer already decided it, or the case is not open.
        """
        _check_name(reviewer)
        seconds = self.lease_seconds if lease_seconds is None else float(lease_seconds)
        if seconds <= 0:
            raise LeaseError(f"lease_seconds must be positive, got {seconds}")
        for _ in range(3):
            now = self._clock()
            try:
                with self.store.raw(write=True) as tx:
                    case, places = self._lock_case_and_slots(tx, case_id)
                    lease = self._take_slot(tx, case, places, reviewer, now, now + seconds)
                break
            except sa.exc.IntegrityError:
                continue  # the same reviewer claimed concurrently elsewhere: look again
        else:
            raise LeaseError(f"could not claim case {case_id} for {reviewer!r}; try again")
        self._notify(QueueEvent(kind="claim", case_id=case_id, status="open", reviewer=reviewer))
        return lease

    def release(self, case_id: str, reviewer: str) -> bool:
        """Give a claim back before it expires; returns whether the reviewer held one."""
        with self.store.raw(write=True) as tx:
            case = self._lock_case(tx, case_id)
            params = {"case": case_id, "reviewer": reviewer, "no": False}
            released = tx.run(self._change.release, params)
        if released:
            self._notify(
                QueueEvent(kind="release", case_id=case_id, status=case.status, reviewer=reviewer)
            )
        return bool(released)

    # -- decisions ----------------------------------------------------------------------

    def resolve(
        self,
        case_id: str,
        reviewer: str,
        decision: Decision,
        request_id: str | None = None,
        *,
        tie_break: bool = False,
    ) -> DecisionRecord:
        """Record a reviewer's decision, in one transaction.

        Needs the reviewer's unexpired claim unless the queue has ``require_claim=False`` (then
        a free place is claimed implicitly). When the ``reviewers_required``-th decision arrives
        the case becomes ``decided`` (a strict majority agrees) or ``tie``. ``tie_break=True``
        settles a ``tie`` case (by an admin). A retried ``request_id`` is applied once and
        returns the same record.
        """
        _check_name(reviewer)
        for _ in range(3):
            try:
                record, applied = self._resolve_once(
                    case_id, reviewer, decision, request_id, tie_break
                )
                break
            except sa.exc.IntegrityError:
                continue  # a concurrent retry of the same request: look again
        else:
            raise EscalationError(
                f"request id {request_id!r} is already used by another decision; "
                "use a fresh request id for each new decision"
            )
        if applied:
            self._notify(
                QueueEvent(
                    kind="decide", case_id=case_id, status=record.case_status, reviewer=reviewer
                )
            )
        return record

    def _resolve_once(
        self,
        case_id: str,
        reviewer: str,
        decision: Decision,
        request_id: str | None,
        tie_break: bool,
    ) -> tuple[DecisionRecord, bool]:
        """Apply a decision in one transaction; returns the record and whether it was applied
        now (False: ``request_id`` had been applied before, its record is returned)."""
        now = self._clock()
        with self.store.raw(write=True) as tx:
            # The case locked, then (under the lock, sent together) its decisions with any
            # earlier use of the request id, and its slots.
            found, rows, places = tx.all_of(
                [
                    (self._change.lock_case_candidates, {"case": case_id}),
                    (self._change.decisions, {"case": case_id, "request": request_id}),
                    (self._change.slots, {"case": case_id}),
                ]
            )
            if not found:
                raise CaseNotFound(f"no case {case_id!r} in {self.store.where}")
            case = found[0]
            every = [r for r in rows if r.case_id == case_id]
            if request_id is not None:
                prior = next((r for r in rows if r.request_id == request_id), None)
                if prior is not None:
                    if prior.case_id != case_id or prior.reviewer != reviewer:
                        raise EscalationError(
                            f"request id {request_id!r} was already used by {prior.reviewer!r} "
                            f"on case {prior.case_id}; use a fresh request id per decision"
                        )
                    return self._record(prior), False
            candidate_ids = [c["id"] for c in from_json(case.candidates)]
            if decision.choice is not None and decision.choice not in candidate_ids:
                raise EscalationError(
                    f"case {case_id} has no candidate {decision.choice!r}; "
                    f"choose one of {candidate_ids} or give an edited answer"
                )
            reviews = [r for r in every if not r.tie_break]
            decision_id = new_id()
            writes: list[tuple[str, dict[str, Any]]] = []
            if tie_break:
                if self.admins is not None and reviewer not in self.admins:
                    raise LeaseError(f"only an admin may break a tie; {reviewer!r} is not one")
                if case.status != "tie":
                    raise LeaseError(
                        f"case {case_id} is {case.status}; a tie-break applies only to a case "
                        "whose reviewers disagreed (status 'tie')"
                    )
                status: CaseStatus = "decided"
                final_id: str | None = decision_id
            else:
                if case.status != "open":
                    extra = " (an admin must break the tie)" if case.status == "tie" else ""
                    raise LeaseError(f"case {case_id} is {case.status}{extra}; not deciding")
                if any(r.reviewer == reviewer for r in reviews):
                    raise LeaseError(f"reviewer {reviewer!r} has already decided case {case_id}")
                own = next((p for p in places if p.reviewer == reviewer), None)
                if own is not None and own.expires_at is not None and own.expires_at > now:
                    slot = own.slot
                elif self.require_claim:
                    why = "the claim expired" if own is not None else "no claim is held"
                    raise LeaseError(
                        f"reviewer {reviewer!r} cannot decide case {case_id}: {why}; claim it first"
                    )
                else:
                    lease = self._take_slot(
                        tx, case, places, reviewer, now, now + self.lease_seconds
                    )
                    slot = lease.slot
                writes.append(
                    (
                        self._change.mark_decided,
                        {"case": case_id, "slot": slot, "now": now, "yes": True},
                    )
                )
                keys = [self._record(r).key for r in reviews] + [decision.key]
                ids = [r.id for r in reviews] + [decision_id]
                if len(keys) < case.reviewers_required:
                    status, final_id = "open", None
                else:
                    winner = _outcome(keys, case.reviewers_required)
                    status = "tie" if winner is None else "decided"
                    final_id = None if winner is None else ids[winner]
            values = {
                "id": decision_id,
                "case_id": case_id,
                "seq": len(every) + 1,
                "reviewer": reviewer,
                "choice": decision.choice,
                "edited_text": decision.edited_text,
                "rationale": decision.rationale,
                "principle_tags": json.dumps(list(decision.principle_tags)),
                "request_id": request_id,
                "tie_break": tie_break,
                "case_status": status,
                "created_at": now,
            }
            writes.append((self._change.insert_decision, values))
            status_values = {
                "case": case_id,
                "status": status,
                "now": now,
                "final": final_id,
                "decided_at": now if status == "decided" else None,
            }
            writes.append((self._change.set_status, status_values))
            tx.run_all(writes)  # together: one round trip to PostgreSQL
        record = DecisionRecord(
            id=decision_id,
            case_id=case_id,
            reviewer=reviewer,
            choice=decision.choice,
            edited_text=decision.edited_text,
            rationale=decision.rationale,
            principle_tags=decision.principle_tags,
            request_id=request_id,
            tie_break=tie_break,
            case_status=status,
            created_at=_dt(now),
        )
        return record, True

    def withdraw(self, case_id: str, reason: str) -> Case:
        """Take a case back (e.g. its run was cancelled). Decided cases cannot be withdrawn;
        withdrawing twice is a no-op."""
        now = self._clock()
        with self.store.raw(write=True) as tx:
            case = self._lock_case(tx, case_id)
            if case.status == "decided":
                raise EscalationError(f"case {case_id} is already decided; it cannot be withdrawn")
            changed = case.status != "withdrawn"
            if changed:
                tx.run(self._change.withdraw, {"case": case_id, "reason": reason, "now": now})
                tx.run(self._change.release_all, {"case": case_id, "no": False})
        if changed:
            self._notify(QueueEvent(kind="withdraw", case_id=case_id, status="withdrawn"))
        return self.get(case_id)

    async def wait(self, case_id: str, poll: float = 0.2) -> Case:
        """Wait until the case is decided (or withdrawn) and return it. Put a deadline around
        it with ``anyio.fail_after``."""
        while True:
            case = await anyio.to_thread.run_sync(self.get, case_id)
            if case.status in TERMINAL_STATUSES:
                return case
            await anyio.sleep(poll)


def _check_name(reviewer: str) -> None:
    if not reviewer or not reviewer.strip() or len(reviewer) > 200:
        raise EscalationError(
            f"reviewer name {reviewer!r} must be 1 to 200 characters and not blank"
        )


__all__ = [
    "CASE_STATUSES",
    "Candidate",
    "Case",
    "CaseStatus",
    "CaseSubmission",
    "Decision",
    "DecisionRecord",
    "FinalDecision",
    "HumanQueue",
    "Lease",
    "QueueCounts",
    "QueueEvent",
    "final_decision",
]
