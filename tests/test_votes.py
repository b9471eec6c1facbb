"""Stakeholder votes: the role, proposals in the queue database, votes on the review page and
API (same session, CSRF and CSP rules), replayed votes, and the tally as an overlay."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import import_or_fail

import_or_fail("fastapi", "the web page needs the web extra")

import typer  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from test_web import XSS, audit, csrf_of, login  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from oversight.cli import votes as votes_cli  # noqa: E402
from oversight.cli import web as web_cli  # noqa: E402
from oversight.constitution import Overlay, load_constitution, load_overlay  # noqa: E402
from oversight.errors import PriorityCycleError  # noqa: E402
from oversight.escalation import HumanQueue  # noqa: E402
from oversight.escalation.accounts import ReviewerAccounts  # noqa: E402
from oversight.escalation.votes import (  # noqa: E402
    NotStakeholder,
    StakeholderVotes,
    VoteError,
)
from oversight.web import create_app  # noqa: E402

DEFAULT = "constitutions/default.yaml"
EDGE = {"winner": "privacy", "loser": "helpfulness"}


@pytest.fixture
def queue(tmp_path: Path) -> Any:
    with HumanQueue(f"sqlite:///{tmp_path / 'queue.db'}") as q:
        yield q


@pytest.fixture
def accounts(queue: HumanQueue) -> ReviewerAccounts:
    return ReviewerAccounts(queue.store)


@pytest.fixture
def ballot(queue: HumanQueue, accounts: ReviewerAccounts) -> StakeholderVotes:
    return StakeholderVotes(queue.store, accounts=accounts)


@pytest.fixture
def app(queue: HumanQueue, accounts: ReviewerAccounts, ballot: StakeholderVotes) -> Any:
    return create_app(queue, accounts, votes=ballot)


def stakeholder(app: Any, accounts: ReviewerAccounts, name: str) -> TestClient:
    client = login(app, accounts, name)
    accounts.add_reviewer(name, stakeholder=True)  # the role applies to the open session
    return client


def bearer(app: Any, accounts: ReviewerAccounts, name: str, **roles: bool) -> TestClient:
    client = TestClient(app)
    reply = client.post("/api/login", json={"token": accounts.add_reviewer(name, **roles)})
    assert reply.status_code == 200
    client.headers["Authorization"] = f"Bearer {reply.json()['session']}"
    return client


def test_roles_are_stored_and_reported(accounts: ReviewerAccounts) -> None:
    accounts.add_reviewer("alice")
    accounts.add_reviewer("sam", stakeholder=True)
    accounts.add_reviewer("root", admin=True, stakeholder=True)
    roles = {r.name: (r.admin, r.stakeholder) for r in accounts.list_reviewers()}
    assert roles == {"alice": (False, False), "sam": (False, True), "root": (True, True)}
    token = accounts.add_reviewer("sam")  # a new token without the role takes it away
    assert not accounts.login(token).reviewer.stakeholder


def test_a_vote_without_the_role_is_refused_everywhere(
    app: Any, accounts: ReviewerAccounts, ballot: StakeholderVotes
) -> None:
    pid = ballot.propose("edge", EDGE, by="root")
    alice = login(app, accounts, "alice")
    page = alice.get("/votes")
    assert page.status_code == 200 and 'id="not-stakeholder"' in page.text
    assert "vote-form" not in page.text
    forged = alice.post(f"/votes/{pid}", data={"csrf": csrf_of(alice), "choice": "approve"})
    assert forged.status_code == 403 and "not a stakeholder" in forged.text
    api = bearer(app, accounts, "bob")
    reply = api.post(f"/api/proposals/{pid}/vote", json={"choice": "approve"})
    assert reply.status_code == 403 and "--stakeholder" in reply.json()["error"]
    with pytest.raises(NotStakeholder):
        ballot.vote(pid, "alice", "approve")
    assert ballot.tally().votes == 0


def test_votes_need_a_session_and_the_csrf_token(
    app: Any, accounts: ReviewerAccounts, ballot: StakeholderVotes
) -> None:
    pid = ballot.propose("edge", EDGE, by="root")
    anonymous = TestClient(app, follow_redirects=False)
    assert anonymous.get("/votes").headers["location"] == "/login"
    assert anonymous.post(f"/votes/{pid}", data={"choice": "approve"}).status_code == 303
    assert anonymous.get("/api/proposals").status_code == 401
    sam = stakeholder(app, accounts, "sam")
    assert sam.post(f"/votes/{pid}", data={"choice": "approve"}).status_code == 403
    assert sam.post(f"/votes/{pid}", data={"choice": "approve", "csrf": "x"}).status_code == 403
    # The API with the cookie needs the CSRF header too.
    assert sam.post(f"/api/proposals/{pid}/vote", json={"choice": "approve"}).status_code == 403
    assert ballot.tally().votes == 0
    ok = sam.post(f"/votes/{pid}", data={"choice": "approve", "csrf": csrf_of(sam)})
    assert ok.status_code == 303
    assert ballot.tally().proposals[0].approve == 1


def test_a_replayed_vote_counts_once_and_a_changed_vote_is_refused(
    app: Any, accounts: ReviewerAccounts, ballot: StakeholderVotes
) -> None:
    pid = ballot.propose("edge", EDGE, by="root")
    sam = bearer(app, accounts, "sam", stakeholder=True)
    first = sam.post(f"/api/proposals/{pid}/vote", json={"choice": "approve", "comment": "yes"})
    again = sam.post(f"/api/proposals/{pid}/vote", json={"choice": "approve"})
    assert first.status_code == again.status_code == 200
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert again.json()["comment"] == "yes"  # the recorded vote, unchanged
    changed = sam.post(f"/api/proposals/{pid}/vote", json={"choice": "reject"})
    assert changed.status_code == 409 and "already voted 'approve'" in changed.json()["error"]
    form = stakeholder(app, accounts, "sam2")
    for _ in range(2):  # a double-submitted form
        reply = form.post(f"/votes/{pid}", data={"choice": "reject", "csrf": csrf_of(form)})
        assert reply.status_code == 303
    (tallied,) = ballot.tally().proposals
    assert (tallied.approve, tallied.reject, tallied.voters) == (1, 1, ("sam", "sam2"))
    assert sam.post("/api/proposals/nope/vote", json={"choice": "approve"}).status_code == 404
    bad = sam.post(f"/api/proposals/{pid}/vote", json={"choice": "maybe"})
    assert bad.status_code == 422 and "choice" in bad.json()["error"]


def test_counts_stay_hidden_until_you_voted(
    app: Any, accounts: ReviewerAccounts, ballot: StakeholderVotes
) -> None:
    pid = ballot.propose("edge", EDGE, by="root")
    ballot.accounts.add_reviewer("early", stakeholder=True)
    ballot.vote(pid, "early", "reject")
    sam = bearer(app, accounts, "sam", stakeholder=True)
    (before,) = sam.get("/api/proposals").json()["proposals"]
    assert before["counts"] is None and before["my_vote"] is None
    sam.post(f"/api/proposals/{pid}/vote", json={"choice": "approve"})
    (after,) = sam.get("/api/proposals").json()["proposals"]
    assert after["counts"] == {"approve": 1, "reject": 1, "abstain": 0}
    assert after["my_vote"] == "approve"
    root = bearer(app, accounts, "root", admin=True)
    assert root.get("/api/proposals").json()["proposals"][0]["counts"]["reject"] == 1


def test_the_votes_page_escapes_proposals(
    app: Any, accounts: ReviewerAccounts, ballot: StakeholderVotes
) -> None:
    evil = " ".join(XSS.values())
    ballot.propose("edge", EDGE, by="root", rationale=evil, title=f"edge {XSS['script']}")
    sam = stakeholder(app, accounts, "sam")
    page = sam.get("/votes")
    assert page.status_code == 200 and "vote-form" in page.text
    assert "&lt;script&gt;window.__pwned=1" in page.text and "<script>window" not in page.text
    found = audit(page.text)
    assert found.problems == [] and found.scripts == ["/static/htmx.min.js", "/static/review.js"]
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_tally_builds_an_overlay_with_provenance(tmp_path: Path, ballot: StakeholderVotes) -> None:
    overlay = load_overlay("constitutions/overlays/children-education.yaml")
    ids = ballot.propose_overlay(overlay, by="root", rationale="school pilot")
    kinds = [p.kind for p in ballot.list_proposals()]
    assert kinds == ["principle", "weight", "weight", "edge", "edge"] and len(ids) == 5
    for name in ("a", "b", "c"):
        ballot.accounts.add_reviewer(name, stakeholder=True)
    votes = {
        ids[0]: ["approve", "approve", "reject"],  # principle: adopted 2/3
        ids[1]: ["reject", "reject", "approve"],  # harm weight: not adopted
        ids[2]: ["abstain", "abstain", "abstain"],  # privacy weight: no quorum
        ids[3]: ["approve", "approve", "approve"],  # age-appropriate > helpfulness
    }  # ids[4]: no votes
    for pid, choices in votes.items():
        for voter, choice in zip("abc", choices, strict=True):
            ballot.vote(pid, voter, choice)
    report = ballot.tally(name="pilot", base="default")
    assert report.votes == 12
    adopted = {t.proposal.title: t.adopted for t in report.proposals}
    assert list(adopted.values()) == [True, False, False, True, False]
    first = report.proposals[0]
    assert (first.approve, first.reject, first.abstain) == (2, 1, 0)
    assert first.agreement == pytest.approx(2 / 3)
    assert report.proposals[2].agreement is None and "quorum" in report.proposals[2].reason
    result = report.overlay
    assert result is not None
    assert [p.id for p in result.add_principles] == ["age-appropriate"]
    assert result.weights == {} and result.add_priorities == (("age-appropriate", "helpfulness"),)
    assert result.provenance["source"] == "stakeholder votes"
    assert [p["approve"] for p in result.provenance["proposals"]] == [2, 1, 0, 3, 0]
    applied = load_constitution("constitutions/default.yaml", overlays=[result])
    assert "age-appropriate" in applied.ids and applied.overlays == ("pilot",)


def test_tally_with_no_votes_reports_it_and_writes_nothing(
    tmp_path: Path, ballot: StakeholderVotes
) -> None:
    empty = ballot.tally()
    assert empty.overlay is None and "no proposals to tally" in empty.summary()
    ballot.propose("edge", EDGE, by="root")
    report = ballot.tally()
    assert report.overlay is None and report.votes == 0
    assert "no votes cast on any of the 1 proposal(s)" in report.summary()


def test_proposals_are_checked(ballot: StakeholderVotes) -> None:
    with pytest.raises(VoteError, match="two different principles"):
        ballot.propose("edge", {"winner": "harm", "loser": "harm"}, by="root")
    with pytest.raises(VoteError, match="weight must be >= 0"):
        ballot.propose("weight", {"principle_id": "harm", "weight": -1}, by="root")
    with pytest.raises(VoteError, match="kind 'principle' is not valid"):
        ballot.propose("principle", {"principle": {"id": "x"}}, by="root")
    with pytest.raises(VoteError, match="no add_principles"):
        ballot.propose_overlay(Overlay(name="empty"), by="root")


def cli() -> typer.Typer:
    root = typer.Typer()
    web_cli.register(root)
    votes_cli.register(root)
    return root


def test_cli_propose_vote_and_tally(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    runner = CliRunner()
    base = ["queue", "--queue", url]
    made = runner.invoke(cli(), [*base, "add-reviewer", "sam", "--stakeholder"])
    assert made.exit_code == 0 and "(stakeholder)" in made.stderr
    proposed = runner.invoke(
        cli(), [*base, "propose", "--edge", "privacy > helpfulness", "--weight", "harm=1.3"]
    )
    assert proposed.exit_code == 0, proposed.output
    ids = proposed.stdout.split()
    assert len(ids) == 2
    out = tmp_path / "votes.yaml"
    nothing = runner.invoke(cli(), [*base, "tally", "--out", str(out)])
    assert nothing.exit_code == 1 and "no votes cast" in nothing.stdout and not out.exists()
    with HumanQueue(url) as queue:
        StakeholderVotes(queue.store).vote(ids[0], "sam", "approve")
    done = runner.invoke(
        cli(), [*base, "tally", "--out", str(out), "-C", "constitutions/default.yaml", "--close"]
    )
    assert done.exit_code == 0, done.output
    written = yaml.safe_load(out.read_text())
    assert written["add_priorities"] == ["privacy > helpfulness"] and written["base"] == "default"
    assert load_overlay(out).provenance["proposals"][0]["voters"] == ["sam"]
    with HumanQueue(url) as queue:
        assert {p.status for p in StakeholderVotes(queue.store).list_proposals()} == {"closed"}
    for bad, message in (
        (["--edge", "harm helpfulness"], "winner > loser"),
        (["--weight", "harm=heavy"], "principle_id=number"),
        ([], "nothing to propose"),
    ):
        reply = runner.invoke(cli(), [*base, "propose", *bad])
        assert reply.exit_code == 2 and message in reply.output, reply.output


def test_tally_refuses_an_overlay_that_makes_a_cycle(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with HumanQueue(url) as queue:
        ballot = StakeholderVotes(queue.store)
        ballot.accounts.add_reviewer("sam", stakeholder=True)
        pid = ballot.propose("edge", {"winner": "helpfulness", "loser": "harm"}, by="root")
        ballot.vote(pid, "sam", "approve")
        report = ballot.tally()
    assert report.overlay is not None
    with pytest.raises(PriorityCycleError):
        load_constitution("constitutions/default.yaml", overlays=[report.overlay])
    result = CliRunner().invoke(
        cli(), ["queue", "--queue", url, "tally", "-o", str(tmp_path / "x.yaml"), "-C", DEFAULT]
    )
    assert result.exit_code == 2 and "cycle" in result.output.lower()
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.postgres
def test_votes_on_postgresql(postgres_url: str) -> None:
    prefix = f"v{uuid.uuid4().hex[:10]}_"
    queue = HumanQueue(postgres_url, table_prefix=prefix)
    ballot = StakeholderVotes(queue.store, table_prefix=prefix)
    try:
        ballot.accounts.add_reviewer("sam", stakeholder=True)
        pid = ballot.propose("edge", EDGE, by="root")
        assert ballot.vote(pid, "sam", "approve").replayed is False
        assert ballot.vote(pid, "sam", "approve").replayed is True
        with pytest.raises(VoteError):
            ballot.vote(pid, "sam", "reject")
        (tallied,) = ballot.tally().proposals
        assert tallied.approve == 1 and tallied.adopted
        assert re.fullmatch(r"[0-9a-f]{32}", pid)
    finally:
        ballot.metadata.drop_all(queue.store.engine)
        ballot.accounts.metadata.drop_all(queue.store.engine)
        queue.store.drop_all()
        queue.close()
