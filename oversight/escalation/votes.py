"""Stakeholder votes on proposed constitution changes, and their tally as an overlay.

Proposals and votes live in the queue's database beside the cases (tables
``<prefix>proposals`` and ``<prefix>votes``, SQLite or PostgreSQL through the same
:class:`~oversight.escalation.store.QueueStore`)::

    ballot = StakeholderVotes(queue.store)
    ids = ballot.propose_overlay(load_overlay("drafted.yaml"), by="root")  # one per change
    ballot.vote(ids[0], "alice", "approve")       # stakeholders only (Reviewer.stakeholder)
    report = ballot.tally(name="stakeholders-2026")
    report.overlay                                 # the adopted changes, with provenance

A proposal is one change: a new principle, a principle's weight, or a priority edge. Each
stakeholder has one vote per proposal (``approve``, ``reject`` or ``abstain``): sending the same
vote again is a no-op that returns the recorded vote (a retried form or request), a different
vote is refused (:class:`~oversight.errors.VoteError`); no vote is counted twice or lost. A
proposal is adopted when at least ``quorum`` stakeholders voted approve or reject and the share
of approvals among them exceeds ``threshold`` (strictly more than half by default).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Literal, TypeAlias

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, ValidationError

from ..constitution import Overlay, Principle
from ..errors import EscalationError
from .accounts import ReviewerAccounts
from .store import QueueStore, from_json

ProposalKind: TypeAlias = Literal["principle", "weight", "edge"]
"""``principle``: add a principle; ``weight``: set a principle's weight; ``edge``: add a
priority edge ``winner > loser``."""
VoteChoice: TypeAlias = Literal["approve", "reject", "abstain"]
PROPOSAL_KINDS: tuple[ProposalKind, ...] = ("principle", "weight", "edge")
VOTE_CHOICES: tuple[VoteChoice, ...] = ("approve", "reject", "abstain")


class VoteError(EscalationError):
    """A vote or proposal was refused (unknown proposal, not a stakeholder, changed vote)."""


class ProposalNotFound(VoteError):
    """No proposal with that id."""


class NotStakeholder(VoteError):
    """The voter does not have the stakeholder role."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Proposal(_Model):
    """One proposed change to the constitution, put to the stakeholders."""

    id: str
    """Proposal id."""
    kind: ProposalKind
    """What kind of change."""
    title: str
    """One line for the voting page (``add edge harm > helpfulness``)."""
    change: dict[str, Any]
    """The change: ``{"principle": {...}}``, ``{"principle_id", "weight"}`` or
    ``{"winner", "loser"}``."""
    rationale: str = ""
    """Why it is proposed (e.g. the policy paragraph it comes from)."""
    proposed_by: str
    """Who put it to the vote."""
    created_at: datetime
    """When (UTC)."""
    status: Literal["open", "closed"] = "open"
    """Closed proposals take no more votes."""


class Vote(_Model):
    """A stakeholder's vote as stored."""

    proposal_id: str
    """The proposal."""
    voter: str
    """The stakeholder."""
    choice: VoteChoice
    """``approve``, ``reject`` or ``abstain``."""
    comment: str = ""
    """Optional reason."""
    created_at: datetime
    """When it was cast (UTC)."""
    replayed: bool = False
    """True when this call repeated a vote already recorded (nothing changed)."""


class ProposalTally(_Model):
    """The count for one proposal."""

    proposal: Proposal
    """The proposal."""
    approve: int
    """Approvals."""
    reject: int
    """Rejections."""
    abstain: int
    """Abstentions."""
    voters: tuple[str, ...]
    """Who voted (any choice), by name."""
    agreement: float | None
    """Share of the approve/reject votes on the majority side (1.0: unanimous); None when no
    one voted approve or reject."""
    adopted: bool
    """Whether the change goes into the overlay."""
    reason: str
    """Why it was or was not adopted."""


class TallyReport(_Model):
    """A tally of every proposal and the overlay of the adopted ones."""

    proposals: tuple[ProposalTally, ...]
    """Per proposal, oldest first."""
    votes: int
    """Votes cast in all."""
    overlay: Overlay | None
    """The adopted changes with provenance; None when nothing was adopted."""
    quorum: int
    """Least approve + reject votes for a proposal to count."""
    threshold: float
    """Approvals must be more than this share of the approve and reject votes."""

    def summary(self) -> str:
        """A plain-text report: one line per proposal, then the verdict."""
        if not self.proposals:
            return "no proposals to tally: put changes to the vote with `oversight queue propose`"
        lines = []
        for t in self.proposals:
            share = "-" if t.agreement is None else f"{t.agreement:.0%}"
            mark = "ADOPTED" if t.adopted else "not adopted"
            lines.append(
                f"{t.proposal.id[:8]}  {t.proposal.title}: approve {t.approve}, reject "
                f"{t.reject}, abstain {t.abstain}, agreement {share}: {mark} ({t.reason})"
            )
        if self.votes == 0:
            lines.append(
                f"no votes cast on any of the {len(self.proposals)} proposal(s): nothing to "
                "adopt; stakeholders vote on the review page at /votes"
            )
        elif self.overlay is None:
            lines.append(f"{self.votes} vote(s) cast; no proposal adopted: no overlay written")
        return "\n".join(lines)


def proposals_from_overlay(overlay: Overlay) -> list[tuple[ProposalKind, str, dict[str, Any]]]:
    """One ``(kind, title, change)`` per change an overlay makes that can be voted on: each
    added principle, weight and added priority edge (other keys are not put to the vote)."""
    out: list[tuple[ProposalKind, str, dict[str, Any]]] = []
    for p in overlay.add_principles:
        change = {"principle": p.model_dump(mode="json", exclude_defaults=True)}
        out.append(("principle", f"add principle {p.id}: {p.name}", change))
    for pid, weight in overlay.weights.items():
        out.append(
            ("weight", f"weight of {pid} = {weight:g}", {"principle_id": pid, "weight": weight})
        )
    for winner, loser in overlay.add_priorities:
        out.append(("edge", f"add edge {winner} > {loser}", {"winner": winner, "loser": loser}))
    return out


def _check_change(kind: ProposalKind, change: dict[str, Any]) -> dict[str, Any]:
    """The change validated for its kind (VoteError naming the problem otherwise)."""
    try:
        if kind == "principle":
            principle = Principle.model_validate(change.get("principle"))
            return {"principle": principle.model_dump(mode="json", exclude_defaults=True)}
        if kind == "weight":
            pid, weight = change.get("principle_id"), change.get("weight")
            if not isinstance(pid, str) or not pid or not isinstance(weight, int | float):
                raise ValueError("a weight change needs principle_id (text) and weight (number)")
            if weight < 0:
                raise ValueError(f"weight must be >= 0, got {weight}")
            return {"principle_id": pid, "weight": float(weight)}
        winner, loser = change.get("winner"), change.get("loser")
        if not (isinstance(winner, str) and isinstance(loser, str) and winner and loser):
            raise ValueError("an edge change needs winner and loser (principle ids)")
        if winner == loser:
            raise ValueError(f"an edge needs two different principles, got {winner} > {loser}")
        return {"winner": winner, "loser": loser}
    except (ValidationError, ValueError) as exc:
        raise VoteError(f"proposal of kind {kind!r} is not valid: {exc}") from None


class StakeholderVotes:
    """Proposals and stakeholder votes, stored beside the queue's cases."""

    def __init__(
        self,
        store: QueueStore,
        *,
        table_prefix: str = "queue_",
        accounts: ReviewerAccounts | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self._clock = clock
        self.accounts = accounts or ReviewerAccounts(store, table_prefix=table_prefix)
        self.metadata = sa.MetaData()
        self.proposals = sa.Table(
            f"{table_prefix}proposals",
            self.metadata,
            sa.Column("id", sa.String(64), primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("title", sa.Text, nullable=False),
            sa.Column("change", sa.JSON, nullable=False),
            sa.Column("rationale", sa.Text, nullable=False),
            sa.Column("proposed_by", sa.String(64), nullable=False),
            sa.Column("created_at", sa.Double, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
        )
        self.votes = sa.Table(
            f"{table_prefix}votes",
            self.metadata,
            sa.Column(
                "proposal_id",
                sa.String(64),
                sa.ForeignKey(self.proposals.c.id, ondelete="CASCADE"),
                primary_key=True,
            ),
            sa.Column("voter", sa.String(64), primary_key=True),
            sa.Column("choice", sa.String(16), nullable=False),
            sa.Column("comment", sa.Text, nullable=False),
            sa.Column("created_at", sa.Double, nullable=False),
        )
        with store.write() as conn:
            self.metadata.create_all(conn)

    # -- proposals ----------------------------------------------------------------------------

    def propose(
        self,
        kind: ProposalKind,
        change: dict[str, Any],
        *,
        by: str,
        title: str | None = None,
        rationale: str = "",
    ) -> str:
        """Put one change to the vote; returns the proposal id."""
        if kind not in PROPOSAL_KINDS:
            raise VoteError(f"unknown proposal kind {kind!r}; use one of {PROPOSAL_KINDS}")
        checked = _check_change(kind, change)
        if title is None:
            title = next(
                (t for k, t, c in proposals_from_overlay(_overlay_of(kind, checked)) if k == kind),
                kind,
            )
        pid = uuid.uuid4().hex
        with self.store.write() as conn:
            conn.execute(
                sa.insert(self.proposals).values(
                    id=pid,
                    kind=kind,
                    title=title,
                    change=checked,
                    rationale=rationale,
                    proposed_by=by,
                    created_at=self._clock(),
                    status="open",
                )
            )
        return pid

    def propose_overlay(self, overlay: Overlay, *, by: str, rationale: str = "") -> list[str]:
        """One proposal per added principle, weight and added edge of ``overlay``."""
        changes = proposals_from_overlay(overlay)
        if not changes:
            raise VoteError(
                f"overlay {overlay.name!r} has no add_principles, weights or add_priorities to "
                "put to the vote"
            )
        why = rationale or f"from overlay {overlay.name}"
        return [self.propose(k, c, by=by, title=t, rationale=why) for k, t, c in changes]

    def list_proposals(self, *, status: str | None = None) -> list[Proposal]:
        """Proposals, oldest first (``status`` ``open`` or ``closed`` to filter)."""
        t = self.proposals
        query = sa.select(t).order_by(t.c.created_at, t.c.id)
        if status is not None:
            query = query.where(t.c.status == status)
        with self.store.read() as conn:
            return [_proposal(row) for row in conn.execute(query).all()]

    def get(self, proposal_id: str) -> Proposal:
        """One proposal (:class:`ProposalNotFound` when there is none)."""
        t = self.proposals
        with self.store.read() as conn:
            row = conn.execute(sa.select(t).where(t.c.id == proposal_id)).first()
        if row is None:
            raise ProposalNotFound(f"no proposal {proposal_id!r}; list them at /votes")
        return _proposal(row)

    def close(self, proposal_id: str) -> None:
        """Take no more votes on a proposal."""
        self.get(proposal_id)
        with self.store.write() as conn:
            conn.execute(
                sa.update(self.proposals)
                .where(self.proposals.c.id == proposal_id)
                .values(status="closed")
            )

    # -- votes --------------------------------------------------------------------------------

    def vote(self, proposal_id: str, voter: str, choice: str, comment: str = "") -> Vote:
        """Record ``voter``'s vote. Stakeholders only; the same vote again is a no-op that
        returns the recorded one (``replayed=True``); a different vote is refused."""
        if choice not in VOTE_CHOICES:
            raise VoteError(f"vote {choice!r} is not one of {', '.join(VOTE_CHOICES)}")
        k, p, v = self.accounts.stakeholders, self.proposals, self.votes
        with self.store.write() as conn:
            if conn.execute(sa.select(k.c.name).where(k.c.name == voter)).first() is None:
                raise NotStakeholder(
                    f"{voter} is not a stakeholder; an admin gives the role with "
                    f"`oversight queue add-reviewer {voter} --stakeholder`"
                )
            status = conn.execute(sa.select(p.c.status).where(p.c.id == proposal_id)).scalar()
            if status is None:
                raise ProposalNotFound(f"no proposal {proposal_id!r}; list them at /votes")
            found = conn.execute(
                sa.select(v).where(v.c.proposal_id == proposal_id, v.c.voter == voter)
            ).first()
            if found is not None:
                if found.choice != choice:
                    raise VoteError(
                        f"{voter} already voted {found.choice!r} on proposal {proposal_id[:8]}; "
                        "a vote is final (one per stakeholder and proposal)"
                    )
                return _vote(found, replayed=True)
            if status != "open":
                raise VoteError(f"proposal {proposal_id[:8]} is closed; it takes no more votes")
            now = self._clock()
            values = {
                "proposal_id": proposal_id,
                "voter": voter,
                "choice": choice,
                "comment": comment,
                "created_at": now,
            }
            conn.execute(sa.insert(v).values(**values))
        return Vote(**{**values, "created_at": datetime.fromtimestamp(now, UTC)})

    def votes_of(self, voter: str) -> dict[str, Vote]:
        """Proposal id -> ``voter``'s vote."""
        v = self.votes
        with self.store.read() as conn:
            rows = conn.execute(sa.select(v).where(v.c.voter == voter)).all()
        return {row.proposal_id: _vote(row) for row in rows}

    def tally(
        self,
        *,
        name: str = "stakeholder-votes",
        base: str | None = None,
        quorum: int = 1,
        threshold: float = 0.5,
        proposal_ids: Iterable[str] | None = None,
    ) -> TallyReport:
        """Count the votes of every proposal (or of ``proposal_ids``) and build the overlay of
        the adopted changes. Adopted: approve + reject >= ``quorum`` and approvals / (approve +
        reject) > ``threshold`` (a strict majority by default)."""
        if quorum < 1:
            raise VoteError(f"quorum must be at least 1, got {quorum}")
        if not 0.0 <= threshold < 1.0:
            raise VoteError(f"threshold must lie in [0, 1), got {threshold}")
        proposals = self.list_proposals()
        if proposal_ids is not None:
            wanted = set(proposal_ids)
            missing = wanted - {p.id for p in proposals}
            if missing:
                raise ProposalNotFound(f"no proposal(s) {sorted(missing)}")
            proposals = [p for p in proposals if p.id in wanted]
        v = self.votes
        with self.store.read() as conn:
            rows = conn.execute(sa.select(v).order_by(v.c.voter)).all()
        by_proposal: dict[str, list[Any]] = {}
        for row in rows:
            by_proposal.setdefault(row.proposal_id, []).append(row)
        tallies = []
        for p in proposals:
            cast = by_proposal.get(p.id, [])
            counts = {c: sum(1 for r in cast if r.choice == c) for c in VOTE_CHOICES}
            decided = counts["approve"] + counts["reject"]
            share = counts["approve"] / decided if decided else None
            agreement = max(share, 1 - share) if share is not None else None
            if decided < quorum:
                adopted, reason = False, f"{decided} approve/reject vote(s), quorum {quorum}"
            else:
                assert share is not None
                adopted = share > threshold
                reason = f"{share:.0%} approve, needs more than {threshold:.0%}"
            tallies.append(
                ProposalTally(
                    proposal=p,
                    approve=counts["approve"],
                    reject=counts["reject"],
                    abstain=counts["abstain"],
                    voters=tuple(r.voter for r in cast),
                    agreement=agreement,
                    adopted=adopted,
                    reason=reason,
                )
            )
        total = sum(len(by_proposal.get(p.id, [])) for p in proposals)
        overlay = _overlay(tallies, name, base, quorum, threshold)
        return TallyReport(
            proposals=tuple(tallies),
            votes=total,
            overlay=overlay,
            quorum=quorum,
            threshold=threshold,
        )


def _overlay_of(kind: ProposalKind, change: dict[str, Any]) -> Overlay:
    if kind == "principle":
        return Overlay(name="p", add_principles=(Principle.model_validate(change["principle"]),))
    if kind == "weight":
        return Overlay(name="p", weights={change["principle_id"]: change["weight"]})
    return Overlay(name="p", add_priorities=((change["winner"], change["loser"]),))


def _overlay(
    tallies: list[ProposalTally], name: str, base: str | None, quorum: int, threshold: float
) -> Overlay | None:
    adopted = [t for t in tallies if t.adopted]
    if not adopted:
        return None
    principles, weights, edges = [], {}, []
    for t in adopted:
        change = t.proposal.change
        if t.proposal.kind == "principle":
            principles.append(Principle.model_validate(change["principle"]))
        elif t.proposal.kind == "weight":
            weights[change["principle_id"]] = float(change["weight"])
        else:
            edges.append((change["winner"], change["loser"]))
    provenance = {
        "source": "stakeholder votes",
        "tallied_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rule": {"quorum": quorum, "threshold": threshold},
        "proposals": [
            {
                "id": t.proposal.id,
                "title": t.proposal.title,
                "proposed_by": t.proposal.proposed_by,
                "rationale": t.proposal.rationale,
                "approve": t.approve,
                "reject": t.reject,
                "abstain": t.abstain,
                "agreement": t.agreement,
                "voters": list(t.voters),
                "adopted": t.adopted,
            }
            for t in tallies
        ],
    }
    return Overlay(
        name=name,
        description=f"Adopted by stakeholder vote: {len(adopted)} of {len(tallies)} proposal(s).",
        base=base,
        add_principles=tuple(principles),
        weights=weights,
        add_priorities=tuple(edges),
        provenance=provenance,
    )


def _proposal(row: Any) -> Proposal:
    return Proposal(
        id=row.id,
        kind=row.kind,
        title=row.title,
        change=from_json(row.change),
        rationale=row.rationale,
        proposed_by=row.proposed_by,
        created_at=datetime.fromtimestamp(row.created_at, UTC),
        status=row.status,
    )


def _vote(row: Any, *, replayed: bool = False) -> Vote:
    return Vote(
        proposal_id=row.proposal_id,
        voter=row.voter,
        choice=row.choice,
        comment=row.comment,
        created_at=datetime.fromtimestamp(row.created_at, UTC),
        replayed=replayed,
    )


def overlay_yaml(overlay: Overlay) -> str:
    """The overlay as YAML a person can review and ``load_overlay`` can read."""
    import yaml

    data = overlay.model_dump(mode="json", exclude_defaults=True, exclude={"source"})
    if "add_principles" in data:
        data["add_principles"] = [
            p.model_dump(mode="json", exclude_defaults=True) for p in overlay.add_principles
        ]
    if "add_priorities" in data:
        data["add_priorities"] = [f"{w} > {lo}" for w, lo in overlay.add_priorities]

    class _Dumper(yaml.SafeDumper):
        pass

    def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None  # prompts stay readable as blocks
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _text)
    return str(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100))


__all__ = [
    "PROPOSAL_KINDS",
    "VOTE_CHOICES",
    "NotStakeholder",
    "Proposal",
    "ProposalKind",
    "ProposalNotFound",
    "ProposalTally",
    "StakeholderVotes",
    "TallyReport",
    "Vote",
    "VoteChoice",
    "VoteError",
    "overlay_yaml",
    "proposals_from_overlay",
]
