"""Stakeholder votes on the review page: ``/votes`` and ``/api/proposals``.

Kept apart from the case routes of :mod:`oversight.web.app`; :func:`add_vote_routes` mounts
them with the app's own session, CSRF and API helpers, so the same authentication, CSRF and
CSP rules apply. Stakeholders do not see the counts of a proposal until they voted on it (or it
is closed, or they are an admin), like reviewers and other reviewers' decisions.
"""

# No ``from __future__ import annotations``: the routes' parameter types are the app's own
# dependency annotations, passed in as values, which FastAPI must see evaluated.
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from fastapi import FastAPI, Form, HTTPException
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..errors import QueueStoreError
from ..escalation.accounts import Session
from ..escalation.votes import (
    NotStakeholder,
    Proposal,
    ProposalKind,
    ProposalNotFound,
    StakeholderVotes,
    Vote,
    VoteChoice,
    VoteError,
)
from .schema import SECURITY, errors

T = TypeVar("T")
ApiCall = Callable[[Any, Callable[[Session], T]], Awaitable[T]]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VoteRequest(_Body):
    """A stakeholder's vote on one proposal."""

    choice: VoteChoice
    """``approve``, ``reject`` or ``abstain``; one vote per proposal, final."""
    comment: str = Field(default="", max_length=2000)
    """Optional reason."""


class VoteCounts(_Body):
    """A proposal's votes so far."""

    approve: int
    """Approvals."""
    reject: int
    """Rejections."""
    abstain: int
    """Abstentions."""


class ProposalView(_Body):
    """A proposal as a reviewer sees it."""

    id: str
    """Proposal id."""
    kind: ProposalKind
    """``principle``, ``weight`` or ``edge``."""
    title: str
    """One line."""
    change: dict[str, Any]
    """The proposed change."""
    rationale: str
    """Why it is proposed."""
    proposed_by: str
    """Who proposed it."""
    created_at: datetime
    """When (UTC)."""
    status: Literal["open", "closed"]
    """Closed proposals take no more votes."""
    my_vote: VoteChoice | None
    """Your vote, if you voted."""
    counts: VoteCounts | None
    """The counts: shown once you voted, to admins, and on closed proposals; else null."""


class ProposalList(_Body):
    """Every proposal, oldest first."""

    proposals: list[ProposalView]
    """The proposals."""
    stakeholder: bool
    """Whether you may vote."""


def _counts(ballot: StakeholderVotes, proposal_ids: list[str]) -> dict[str, VoteCounts]:
    report = ballot.tally(proposal_ids=proposal_ids)
    return {
        t.proposal.id: VoteCounts(approve=t.approve, reject=t.reject, abstain=t.abstain)
        for t in report.proposals
    }


def proposal_views(ballot: StakeholderVotes, session: Session) -> list[ProposalView]:
    """Every proposal with the session's vote and the counts it may see."""
    proposals = ballot.list_proposals()
    mine = ballot.votes_of(session.reviewer.name)
    counts = _counts(ballot, [p.id for p in proposals]) if proposals else {}

    def view(p: Proposal) -> ProposalView:
        vote = mine.get(p.id)
        visible = session.reviewer.admin or vote is not None or p.status == "closed"
        return ProposalView(
            **p.model_dump(),
            my_vote=vote.choice if vote else None,
            counts=counts[p.id] if visible else None,
        )

    return [view(p) for p in proposals]


def cast_vote(
    ballot: StakeholderVotes, session: Session, proposal_id: str, body: VoteRequest
) -> Vote:
    """Record the session's vote; HTTP errors for a non-stakeholder (403), an unknown
    proposal (404), a changed vote or closed proposal (409)."""
    if not session.reviewer.stakeholder:
        raise HTTPException(
            403,
            f"{session.reviewer.name} is not a stakeholder; an admin gives the role with "
            f"`oversight queue add-reviewer {session.reviewer.name} --stakeholder`",
        )
    try:
        return ballot.vote(proposal_id, session.reviewer.name, body.choice, body.comment)
    except NotStakeholder as exc:  # the role was taken away after login
        raise HTTPException(403, str(exc)) from exc
    except ProposalNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except QueueStoreError as exc:
        raise HTTPException(503, str(exc)) from exc
    except VoteError as exc:
        raise HTTPException(409, str(exc)) from exc


def add_vote_routes(
    app: FastAPI,
    ballot: StakeholderVotes,
    *,
    page: Callable[..., HTMLResponse],
    page_session: Any,
    require_csrf: Callable[[Session, str], None],
    credentials: Any,
    api_call: Any,
) -> None:
    """Mount ``GET /votes``, ``POST /votes/{id}``, ``GET /api/proposals`` and
    ``POST /api/proposals/{id}/vote`` on the review app."""

    @app.get("/votes", response_class=HTMLResponse, include_in_schema=False)
    def votes_page(session: page_session) -> HTMLResponse:
        return page("votes.html", session, proposals=proposal_views(ballot, session), error=None)

    @app.post("/votes/{proposal_id}", include_in_schema=False)
    def vote_form(
        proposal_id: str,
        session: page_session,
        csrf: Annotated[str, Form()] = "",
        choice: Annotated[str, Form()] = "",
        comment: Annotated[str, Form(max_length=2000)] = "",
    ) -> Response:
        require_csrf(session, csrf)
        if choice not in ("approve", "reject", "abstain"):
            raise HTTPException(422, f"vote {choice!r} is not approve, reject or abstain")
        try:
            cast_vote(ballot, session, proposal_id, VoteRequest(choice=choice, comment=comment))
        except HTTPException as exc:
            if exc.status_code != 409:
                raise
            views = proposal_views(ballot, session)
            return page("votes.html", session, 409, proposals=views, error=exc.detail)
        return RedirectResponse(f"/votes#p-{proposal_id}", status_code=303)

    @app.get(
        "/api/proposals",
        responses=errors(401, 503),
        tags=["api"],
        openapi_extra={"security": SECURITY},
    )
    async def api_proposals(creds: credentials) -> ProposalList:
        """Every proposed constitution change, oldest first, with your vote and (once you
        voted, on closed proposals, or for admins) the counts."""

        def listing(session: Session) -> ProposalList:
            return ProposalList(
                proposals=proposal_views(ballot, session),
                stakeholder=session.reviewer.stakeholder,
            )

        result: ProposalList = await api_call(creds, listing)
        return result

    @app.post(
        "/api/proposals/{proposal_id}/vote",
        responses=errors(400, 401, 403, 404, 409, 422, 503),
        tags=["api"],
        openapi_extra={"security": SECURITY},
    )
    async def api_vote(proposal_id: str, body: VoteRequest, creds: credentials) -> Vote:
        """Vote on a proposal (stakeholders only). Sending the same vote again returns the
        recorded one with ``replayed: true``; a different vote is refused (409)."""

        def vote(session: Session) -> Vote:
            return cast_vote(ballot, session, proposal_id, body)

        result: Vote = await api_call(creds, vote)
        return result


__all__ = [
    "ProposalList",
    "ProposalView",
    "VoteCounts",
    "VoteRequest",
    "add_vote_routes",
    "cast_vote",
    "proposal_views",
]
