"""Reviewer accounts and login sessions for the review web page.

Accounts live in the queue's own database (tables ``<prefix>reviewers`` and
``<prefix>sessions``), so one URL carries the cases and the people who may decide them::

    accounts = ReviewerAccounts(queue.store)
    token = accounts.add_reviewer("alice", admin=False)     # shown once, stored hashed
    session = accounts.login(token)                         # the token is spent
    accounts.authenticate(session.secret)                   # -> Reviewer, or None

Roles: every account reviews cases; ``admin`` also breaks ties and withdraws cases;
``stakeholder`` also votes on proposed constitution changes (:mod:`oversight.escalation.votes`).
The stakeholder role lives in its own table (``<prefix>stakeholders``), so a queue database made
before the role existed gains it without changing its tables.

Only SHA-256 digests of tokens and session secrets are stored: a copy of the database does not
let anyone log in. A login token works once; a session lasts ``session_seconds`` (default 12 h)
and carries its own CSRF token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa

from ..errors import EscalationError
from .store import QueueStore

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Reviewer:
    """A person who may review cases; ``admin`` may also break ties and withdraw cases,
    ``stakeholder`` may also vote on proposed constitution changes."""

    name: str
    admin: bool
    stakeholder: bool = False


@dataclass(frozen=True)
class Session:
    """A logged-in reviewer: ``secret`` goes in the cookie, ``csrf`` in every form."""

    reviewer: Reviewer
    secret: str
    csrf: str
    expires_at: float


class ReviewerAccounts:
    """Reviewer accounts, one-time login tokens and sessions, stored beside the queue."""

    def __init__(
        self,
        store: QueueStore,
        *,
        table_prefix: str = "queue_",
        session_seconds: float = 12 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.session_seconds = session_seconds
        self._clock = clock
        self.metadata = sa.MetaData()
        self.reviewers = sa.Table(
            f"{table_prefix}reviewers",
            self.metadata,
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("admin", sa.Boolean, nullable=False, default=False),
            sa.Column("token_hash", sa.String(64), nullable=True, unique=True),
            sa.Column("created_at", sa.Float, nullable=False),
        )
        self.sessions = sa.Table(
            f"{table_prefix}sessions",
            self.metadata,
            sa.Column("secret_hash", sa.String(64), primary_key=True),
            sa.Column(
                "reviewer",
                sa.String(64),
                sa.ForeignKey(self.reviewers.c.name, ondelete="CASCADE"),
                nullable=False,
            ),
            sa.Column("csrf", sa.String(64), nullable=False),
            sa.Column("expires_at", sa.Float, nullable=False),
        )
        self.stakeholders = sa.Table(
            f"{table_prefix}stakeholders",
            self.metadata,
            sa.Column(
                "name",
                sa.String(64),
                sa.ForeignKey(self.reviewers.c.name, ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("since", sa.Float, nullable=False),
        )
        with store.write() as conn:
            self.metadata.create_all(conn)
        self._authenticate_sql = store.prepare(
            f"SELECT s.reviewer, s.csrf, s.expires_at, r.admin, k.name AS stakeholder "
            f"FROM {self.sessions.name} s JOIN {self.reviewers.name} r ON r.name = s.reviewer "
            f"LEFT JOIN {self.stakeholders.name} k ON k.name = s.reviewer "
            "WHERE s.secret_hash = :digest"
        )

    # -- accounts ---------------------------------------------------------------------------

    def add_reviewer(self, name: str, *, admin: bool = False, stakeholder: bool = False) -> str:
        """Create ``name`` (or issue a new token for it) and return a one-time login token.

        Issuing a new token for an existing reviewer invalidates the old unused token; its
        sessions stay valid. ``admin`` and ``stakeholder`` are set to the given values.
        """
        if not _NAME_RE.match(name):
            raise EscalationError(
                f"reviewer name {name!r} is not allowed: use 1-64 letters, digits, '.', '_', "
                "'@' or '-', starting with a letter or digit"
            )
        token = secrets.token_urlsafe(24)
        t = self.reviewers
        with self.store.write() as conn:
            exists = conn.execute(sa.select(t.c.name).where(t.c.name == name)).first()
            if exists:
                conn.execute(
                    sa.update(t)
                    .where(t.c.name == name)
                    .values(admin=admin, token_hash=_digest(token))
                )
            else:
                conn.execute(
                    sa.insert(t).values(
                        name=name, admin=admin, token_hash=_digest(token), created_at=self._clock()
                    )
                )
            k = self.stakeholders
            conn.execute(sa.delete(k).where(k.c.name == name))
            if stakeholder:
                conn.execute(sa.insert(k).values(name=name, since=self._clock()))
        return token

    def list_reviewers(self) -> list[Reviewer]:
        """Every account, by name."""
        t, k = self.reviewers, self.stakeholders
        query = (
            sa.select(t.c.name, t.c.admin, k.c.name.label("stakeholder"))
            .select_from(t.outerjoin(k, k.c.name == t.c.name))
            .order_by(t.c.name)
        )
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [Reviewer(r.name, bool(r.admin), r.stakeholder is not None) for r in rows]

    # -- sessions ---------------------------------------------------------------------------

    def login(self, token: str) -> Session:
        """Spend a one-time token and open a session; ``EscalationError`` if it is not valid."""
        t, s = self.reviewers, self.sessions
        secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        now = self._clock()
        with self.store.write() as conn:
            k = self.stakeholders
            row = conn.execute(
                sa.select(t.c.name, t.c.admin, k.c.name.label("stakeholder"))
                .select_from(t.outerjoin(k, k.c.name == t.c.name))
                .where(t.c.token_hash == _digest(token.strip()))
            ).first()
            if row is None:
                raise EscalationError(
                    "this login token is not valid (each token works once); ask an admin to run "
                    "`oversight queue add-reviewer NAME` for a new one"
                )
            conn.execute(sa.update(t).where(t.c.name == row.name).values(token_hash=None))
            conn.execute(sa.delete(s).where(s.c.expires_at < now))
            expires = now + self.session_seconds
            conn.execute(
                sa.insert(s).values(
                    secret_hash=_digest(secret), reviewer=row.name, csrf=csrf, expires_at=expires
                )
            )
        reviewer = Reviewer(row.name, bool(row.admin), row.stakeholder is not None)
        return Session(reviewer, secret, csrf, expires)

    def authenticate(self, secret: str | None) -> Session | None:
        """The session whose cookie secret is ``secret``, or ``None`` (unknown or expired)."""
        if not secret:
            return None
        # Every API request comes through here: one prepared query on the driver's cursor,
        # outside an explicit transaction (one round trip to PostgreSQL).
        with self.store.raw(write=False, single=True) as tx:
            row = tx.one_or_none(self._authenticate_sql, {"digest": _digest(secret)})
        if row is None or row.expires_at <= self._clock():
            return None
        reviewer = Reviewer(row.reviewer, bool(row.admin), row.stakeholder is not None)
        return Session(reviewer, secret, row.csrf, row.expires_at)

    def logout(self, secret: str) -> None:
        """End the session (the cookie stops working at once)."""
        with self.store.write() as conn:
            conn.execute(
                sa.delete(self.sessions).where(self.sessions.c.secret_hash == _digest(secret))
            )


def check_csrf(session: Session, supplied: str | None) -> bool:
    """Whether ``supplied`` is the session's CSRF token (constant-time comparison)."""
    return bool(supplied) and secrets.compare_digest(session.csrf, supplied or "")


__all__ = ["Reviewer", "ReviewerAccounts", "Session", "check_csrf"]
