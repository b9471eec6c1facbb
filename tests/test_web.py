"""The review web app in-process (FastAPI TestClient): accounts, CSRF, CSP, escaping, flows."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import import_or_fail

import_or_fail("fastapi", "the web page needs the web extra")

import typer  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from oversight.cli import web as web_cli  # noqa: E402
from oversight.escalation import CaseSubmission, Decision, HumanQueue  # noqa: E402
from oversight.escalation.accounts import ReviewerAccounts  # noqa: E402
from oversight.web import create_app, resolution_svg  # noqa: E402

XSS = {
    "script": "<script>window.__pwned=1;document.title='PWNED'</script>",
    "handler": '<img src=x onerror="window.__pwned=2">',
    "link": '<a href="javascript:window.__pwned=3">click</a>',
    "svg": '<svg onload="window.__pwned=4"><script>window.__pwned=5</script></svg>',
    "attr": '" autofocus onfocus="window.__pwned=6" x="',
}
PAYLOAD = " ".join(XSS.values())


def submission(episode: str = "ep-1", *, reviewers: int = 1, evil: bool = False, **kw: Any) -> Any:
    text = PAYLOAD if evil else ""
    return CaseSubmission(
        run=kw.pop("run", "demo"),
        episode=episode,
        prompt=[
            {"role": "user", "content": f"How do I pick a lock? {text}"},
            {"role": "assistant", "content": "Why do you ask?"},
            {"role": "user", "content": "I locked myself out."},
        ],
        candidates=[
            {"id": "c0", "text": f"Here is how... {text}", "source": "draft"},
            {"id": "c1", "text": "Call a locksmith.", "source": "revision"},
        ],
        proposed="c1",
        triggers=["disagreement"],
        principles=kw.pop("principles", ["harm", "helpfulness"]),
        priority=kw.pop("priority", 1),
        reviewers_required=reviewers,
        details={
            "critiques": [
                {
                    "kind": "critique",
                    "candidate_id": "c0",
                    "principle_id": "harm",
                    "principle_version": "1",
                    "verdict": "violated",
                    "severity": 0.7,
                    "confidence": 0.6,
                    "rationale": f"gives lock picking steps {text}",
                }
            ],
            "safety": [{"payload": {"candidate_id": "c0", "risk": 0.4, "rationale": text}}],
            "resolution": {
                "payload": {
                    "kind": "resolution",
                    "strategy": "review",
                    "winner": None,
                    "path": ["harm", "helpfulness"],
                    "rationale": f"too close {text}",
                }
            },
            "note": text,
        },
        reason=f"critics disagree {text}",
        **kw,
    )


@pytest.fixture
def queue(tmp_path: Path) -> Iterator[HumanQueue]:
    with HumanQueue(f"sqlite:///{tmp_path / 'queue.db'}") as q:
        yield q


@pytest.fixture
def accounts(queue: HumanQueue) -> ReviewerAccounts:
    return ReviewerAccounts(queue.store)


@pytest.fixture
def app(queue: HumanQueue, accounts: ReviewerAccounts, tmp_path: Path) -> Any:
    return create_app(queue, accounts, runs_dir=tmp_path / "runs")


def login(app: Any, accounts: ReviewerAccounts, name: str, *, admin: bool = False) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = accounts.add_reviewer(name, admin=admin)
    form = client.get("/login")
    nonce = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert nonce
    reply = client.post("/login", data={"token": token, "csrf": nonce.group(1)})
    assert reply.status_code == 303, reply.text
    return client


def csrf_of(client: TestClient, path: str = "/") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match
    return match.group(1)


_ACTIVE_URLS = ("javascript:", "data:", "//", "http")


class _Audit(HTMLParser):
    """Collects what could execute in a page: scripts, handlers, javascript: URLs, styles."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.scripts: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append(dict(attrs).get("src"))
        if tag in ("foreignobject", "iframe", "object", "embed", "img"):
            self.problems.append(f"<{tag}>")
        for key, value in attrs:
            if key.startswith("on"):
                self.problems.append(f"{tag} {key}=")
            if key == "style":
                self.problems.append(f"{tag} style=")
            if key == "autofocus" and tag != "input":
                self.problems.append(f"{tag} autofocus")
            active = key in ("href", "src", "action", "xlink:href", "formaction")
            if active and value and value.strip().lower().startswith(_ACTIVE_URLS):
                self.problems.append(f"{tag} {key}={value}")


def audit(html: str) -> _Audit:
    parser = _Audit()
    parser.feed(html)
    return parser


# -- access control ----------------------------------------------------------------------


def test_nothing_is_readable_without_a_session(app: Any, queue: HumanQueue) -> None:
    case_id = queue.submit(submission())
    client = TestClient(app, follow_redirects=False)
    paths = ("/", f"/cases/{case_id}", f"/cases/{case_id}/rows", "/agreement", "/accuracy")
    for path in (*paths, "/?mine=true"):
        reply = client.get(path)
        assert reply.status_code == 303 and reply.headers["location"] == "/login", path
        assert "lock" not in reply.text
    for method, path in (
        ("GET", "/api/cases"),
        ("GET", f"/api/cases/{case_id}"),
        ("POST", f"/api/cases/{case_id}/claim"),
        ("POST", f"/api/cases/{case_id}/decide"),
    ):
        reply = client.request(method, path, json={"choice": "c0"})
        assert reply.status_code == 401, (method, path)
    for path in ("claim", "release", "decide", "withdraw"):
        assert client.post(f"/cases/{case_id}/{path}").status_code == 303
    assert client.get("/api/cases", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert queue.get(case_id).leases == ()


def test_login_token_works_once_and_sets_a_strict_cookie(
    app: Any, accounts: ReviewerAccounts
) -> None:
    token = accounts.add_reviewer("alice")
    client = TestClient(app, follow_redirects=False)
    nonce = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text)
    assert nonce
    reply = client.post("/login", data={"token": token, "csrf": nonce.group(1)})
    assert reply.status_code == 303
    cookie = reply.headers["set-cookie"].lower()
    assert "oversight_session=" in cookie
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/").status_code == 200
    # The same token again: refused.
    other = TestClient(app, follow_redirects=False)
    nonce = re.search(r'name="csrf" value="([^"]+)"', other.get("/login").text)
    assert nonce
    again = other.post("/login", data={"token": token, "csrf": nonce.group(1)})
    assert again.status_code == 403 and "not valid" in again.text
    # A login form posted without its nonce (login CSRF) is refused.
    token2 = accounts.add_reviewer("bob")
    third = TestClient(app, follow_redirects=False)
    assert third.post("/login", data={"token": token2, "csrf": "x"}).status_code == 403


def test_logout_ends_the_session(app: Any, accounts: ReviewerAccounts) -> None:
    client = login(app, accounts, "alice")
    token = csrf_of(client)
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.post("/logout", data={"csrf": token}).status_code == 303
    assert client.get("/").status_code == 303


def test_forms_need_the_session_csrf_token(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    case_id = queue.submit(submission())
    client = login(app, accounts, "alice")
    assert client.post(f"/cases/{case_id}/claim").status_code == 403
    assert client.post(f"/cases/{case_id}/claim", data={"csrf": "guess"}).status_code == 403
    assert queue.get(case_id).leases == ()
    ok = client.post(f"/cases/{case_id}/claim", data={"csrf": csrf_of(client)})
    assert ok.status_code == 303
    assert [lease.reviewer for lease in queue.get(case_id).leases] == ["alice"]
    # The API with the cookie needs the header; a bearer session does not (not ambient).
    assert client.post(f"/api/cases/{case_id}/claim").status_code == 403
    reply = client.post(f"/api/cases/{case_id}/claim", headers={"X-CSRF-Token": csrf_of(client)})
    assert reply.status_code == 200


def test_security_headers_and_no_inline_script(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    case_id = queue.submit(submission())
    client = login(app, accounts, "alice")
    for path in (
        "/",
        f"/cases/{case_id}",
        "/login",
        "/agreement",
        "/accuracy",
        "/static/review.js",
    ):
        reply = client.get(path)
        csp = reply.headers["content-security-policy"]
        assert (
            "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
        )
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert reply.headers["x-content-type-options"] == "nosniff"
        if reply.headers["content-type"].startswith("text/html"):
            found = audit(reply.text)
            assert found.scripts == ["/static/htmx.min.js", "/static/review.js"], path
            assert found.problems == [], path


def test_htmx_is_vendored_with_its_license(app: Any) -> None:
    client = TestClient(app)
    js = client.get("/static/htmx.min.js")
    assert js.status_code == 200 and "htmx" in js.text[:200]
    assert "Zero-Clause BSD" in client.get("/static/htmx.LICENSE").text


# -- escaping ----------------------------------------------------------------------------


def test_xss_payloads_are_escaped_everywhere(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue, tmp_path: Path
) -> None:
    case_id = queue.submit(submission(evil=True, run="evil<script>"))
    client = login(app, accounts, "alice", admin=True)
    client.post(f"/cases/{case_id}/claim", data={"csrf": csrf_of(client)})
    pages = [client.get("/?status=all"), client.get(f"/cases/{case_id}")]
    for reply in pages:
        assert reply.status_code == 200
        found = audit(reply.text)
        assert found.problems == []
        assert found.scripts == ["/static/htmx.min.js", "/static/review.js"]
        assert "<script>window" not in reply.text
        assert "javascript:window" not in re.findall(r'href="([^"]*)"', reply.text)
    case_html = pages[1].text
    assert "&lt;script&gt;window.__pwned=1" in case_html  # shown, as text
    assert "onerror=&#34;window.__pwned=2" in case_html or "onerror=&quot;" in case_html
    # The API returns the payload as JSON data, not HTML.
    api = client.get(f"/api/cases/{case_id}")
    assert api.headers["content-type"].startswith("application/json")
    assert XSS["script"] in api.json()["prompt"][0]["content"]


def test_svg_escapes_labels_and_has_no_active_content(queue: HumanQueue) -> None:
    evil = '<script>alert(1)</script>"onload="x'
    case = queue.get(queue.submit(submission(principles=["harm", evil])))
    svg = str(resolution_svg(case, [("harm", evil)]))
    assert "<script>" not in svg and 'onload="' not in svg
    assert "&lt;script&gt;" in svg
    found = audit(svg)
    assert found.problems == [] and found.scripts == []


def test_svg_draws_priority_edges_path_and_violations(queue: HumanQueue) -> None:
    case = queue.get(queue.submit(submission()))
    svg = str(resolution_svg(case, [("harm", "helpfulness")]))
    assert svg.count('class="path"') == 1  # harm -> helpfulness is the deciding path
    assert svg.count('class="violates"') == 1  # c0 violates harm
    assert svg.index(">harm<") < svg.index(">helpfulness<")
    assert "strategy: review" in svg


# -- flows -------------------------------------------------------------------------------


def test_claim_decide_by_form_leaves_the_list_and_reaches_final_decision(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    case_id = queue.submit(submission())
    other = queue.submit(submission("ep-2", priority=5))
    client = login(app, accounts, "alice")
    listing = client.get("/").text
    assert case_id[:8] in listing and listing.index(other[:8]) < listing.index(case_id[:8])
    page = client.get(f"/cases/{case_id}").text
    assert "Internal reasoning" in page and 'id="claim-form"' in page
    assert 'id="decide-form"' not in page  # claiming is explicit
    client.post(f"/cases/{case_id}/claim", data={"csrf": csrf_of(client)})
    page = client.get(f"/cases/{case_id}").text
    assert 'id="decide-form"' in page
    assert "alice" in client.get("/").text  # the lease holder shows in the list
    request_id = re.search(r'name="request_id" value="([^"]+)"', page)
    assert request_id
    form = {
        "csrf": csrf_of(client),
        "choice": "c1",
        "rationale": "safe and helpful",
        "tags": ["harm", "helpfulness"],
        "request_id": request_id.group(1),
    }
    assert client.post(f"/cases/{case_id}/decide", data=form).status_code == 303
    # A double submit of the same form applies once.
    assert client.post(f"/cases/{case_id}/decide", data=form).status_code == 303
    case = queue.get(case_id)
    assert case.status == "decided" and len(case.decisions) == 1
    assert case_id[:8] not in client.get("/").text
    final = queue.final_decision(case_id)  # the hook `oversight export` reads
    assert final is not None
    assert final.text == "Call a locksmith." and final.reviewer == "alice"
    assert final.principle_tags == ("harm", "helpfulness") and final.rejected == ("c0",)


def test_edited_answer_and_validation_errors_are_shown(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    case_id = queue.submit(submission())
    client = login(app, accounts, "alice")
    client.post(f"/cases/{case_id}/claim", data={"csrf": csrf_of(client)})
    bad = client.post(
        f"/cases/{case_id}/decide",
        data={"csrf": csrf_of(client), "choice": "edit", "edited_text": "  ", "rationale": "x"},
    )
    assert bad.status_code == 409 and "edited_text is empty" in bad.text
    good = client.post(
        f"/cases/{case_id}/decide",
        data={"csrf": csrf_of(client), "choice": "edit", "edited_text": "Ask a landlord."},
    )
    assert good.status_code == 303
    final = queue.final_decision(case_id)
    assert final is not None and final.text == "Ask a landlord." and final.choice is None


def test_decide_without_claim_is_refused(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    case_id = queue.submit(submission())
    client = login(app, accounts, "alice")
    reply = client.post(f"/cases/{case_id}/decide", data={"csrf": csrf_of(client), "choice": "c1"})
    assert reply.status_code == 409 and "claim" in reply.text.lower()
    assert queue.get(case_id).decisions == ()


def test_several_reviewers_independence_tie_and_admin_tie_break(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    case_id = queue.submit(submission(reviewers=2))
    alice = login(app, accounts, "alice")
    bob = login(app, accounts, "bob")
    root = login(app, accounts, "root", admin=True)
    for client in (alice, bob):
        client.post(f"/cases/{case_id}/claim", data={"csrf": csrf_of(client)})
    alice.post(
        f"/cases/{case_id}/decide",
        data={"csrf": csrf_of(alice), "choice": "c0", "rationale": "ALICE-REASON"},
    )
    # Bob does not see Alice's decision before he decides; the API hides it too.
    assert "ALICE-REASON" not in bob.get(f"/cases/{case_id}").text
    assert bob.get(f"/api/cases/{case_id}").json()["decisions"] == []
    assert "ALICE-REASON" in root.get(f"/cases/{case_id}").text
    bob.post(
        f"/cases/{case_id}/decide", data={"csrf": csrf_of(bob), "choice": "c1", "rationale": "b"}
    )
    assert queue.get(case_id).status == "tie"
    assert "ALICE-REASON" in bob.get(f"/cases/{case_id}").text
    # Bob is not an admin: no tie-break form, and a forged one is refused.
    assert "Break the tie" not in bob.get(f"/cases/{case_id}").text
    forged = bob.post(
        f"/cases/{case_id}/decide",
        data={"csrf": csrf_of(bob), "choice": "c1", "tie_break": "true"},
    )
    assert forged.status_code == 409 and queue.get(case_id).status == "tie"
    assert (
        bob.post(
            f"/cases/{case_id}/withdraw", data={"csrf": csrf_of(bob), "reason": "x"}
        ).status_code
        == 403
    )
    assert "Break the tie" in root.get(f"/cases/{case_id}").text
    root.post(
        f"/cases/{case_id}/decide",
        data={"csrf": csrf_of(root), "choice": "c1", "tie_break": "true", "rationale": "t"},
    )
    case = queue.get(case_id)
    assert case.status == "decided"
    final = queue.final_decision(case)
    assert final is not None and final.tie_break and final.choice == "c1"
    page = root.get("/agreement").text
    assert "alice" in page and "bob" in page and case_id[:8] in page
    assert "settled by an admin tie-break" in root.get(f"/cases/{case_id}").text


def test_accuracy_page_scores_agents_against_decisions_escaped(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    from oversight.messages import Critique, envelope

    evil_agent = "critic<script>alert(1)</script>"
    findings = [
        envelope(
            Critique(candidate_id=c, principle_id="harm", principle_version="1", verdict=v),
            run="demo",
            episode="ep-a",
            sender=evil_agent,
            topic="critique",
        ).model_dump(mode="json")
        for c, v in (("c1", "violated"), ("c0", "violated"))
    ]
    sub = submission("ep-a").model_copy(
        update={"triggers": ("audit",), "details": {"critiques": findings}}
    )
    case_id = queue.submit(sub)
    client = login(app, accounts, "alice")
    assert "No decided case" in client.get("/accuracy").text
    queue.claim(case_id, "alice")
    queue.resolve(case_id, "alice", Decision(choice="c1", principle_tags=("harm",)))
    page = client.get("/accuracy").text
    assert "<script>alert" not in page and "critic&lt;script&gt;" in page
    # c1 chosen (so "violated" is a false alarm), c0 rejected for harm (so "violated" is right)
    row = re.search(r"<td>audit</td><td class=\"num\">(\d+)</td><td class=\"num\">(\d+)</td>", page)
    assert row and row.groups() == ("2", "1")
    assert "critique:harm" in page and audit(page).problems == []
    assert "critique:harm" not in client.get("/accuracy?run=other").text


def test_admin_withdraws_a_case(app: Any, accounts: ReviewerAccounts, queue: HumanQueue) -> None:
    case_id = queue.submit(submission())
    root = login(app, accounts, "root", admin=True)
    root.post(f"/cases/{case_id}/withdraw", data={"csrf": csrf_of(root), "reason": "cancelled"})
    assert queue.get(case_id).status == "withdrawn"


def test_filters_counts_and_my_claims(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    a = queue.submit(submission("a", run="r1"))
    b = queue.submit(submission("b", run="r2"))
    client = login(app, accounts, "alice")
    assert a[:8] in client.get("/?run=r1").text and b[:8] not in client.get("/?run=r1").text
    assert a[:8] not in client.get("/?principle=privacy").text
    assert client.get("/?status=bogus").status_code == 400
    client.post(f"/cases/{b}/claim", data={"csrf": csrf_of(client)})
    mine = client.get("/?mine=true").text
    assert b[:8] in mine and a[:8] not in mine
    fragment = client.get("/?fragment=true")
    assert "<html" not in fragment.text and a[:8] in fragment.text
    assert re.search(r"open <b>2</b>", client.get("/").text)


def test_case_links_to_the_training_rows_it_produced(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue, tmp_path: Path
) -> None:
    case_id = queue.submit(submission())
    queue.claim(case_id, "alice")
    queue.resolve(case_id, "alice", Decision(choice="c1"))
    run_dir = tmp_path / "runs" / "demo"
    run_dir.mkdir(parents=True)
    rows = [
        {"messages": [], "provenance": {"case_id": case_id, "source": "human"}},
        {"messages": [], "provenance": {"case_id": "other", "source": "consensus"}},
    ]
    (run_dir / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    client = login(app, accounts, "alice")
    assert f"/cases/{case_id}/rows" in client.get(f"/cases/{case_id}").text
    page = client.get(f"/cases/{case_id}/rows").text
    assert "sft.jsonl line 1" in page and "sft.jsonl line 2" not in page


# -- JSON API ----------------------------------------------------------------------------


def api_client(app: Any, accounts: ReviewerAccounts, name: str) -> TestClient:
    client = TestClient(app)
    reply = client.post("/api/login", json={"token": accounts.add_reviewer(name)})
    assert reply.status_code == 200
    client.headers["Authorization"] = f"Bearer {reply.json()['session']}"
    return client


def test_api_list_show_claim_decide_and_retry(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    case_id = queue.submit(submission())
    alice = api_client(app, accounts, "alice")
    bob = api_client(app, accounts, "bob")
    listing = alice.get("/api/cases").json()
    assert listing["total"] == 1 and listing["cases"][0]["id"] == case_id
    assert "details" not in listing["cases"][0]
    shown = alice.get(f"/api/cases/{case_id}").json()
    assert shown["details"]["critiques"][0]["verdict"] == "violated"
    assert alice.post(f"/api/cases/{case_id}/claim").status_code == 200
    assert bob.post(f"/api/cases/{case_id}/claim").status_code == 409  # one place
    body = {"choice": "c1", "rationale": "r", "request_id": "req-1"}
    assert bob.post(f"/api/cases/{case_id}/decide", json=body).status_code == 409
    first = alice.post(f"/api/cases/{case_id}/decide", json=body)
    again = alice.post(f"/api/cases/{case_id}/decide", json=body)
    assert first.status_code == again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert len(queue.get(case_id).decisions) == 1
    assert alice.post(
        f"/api/cases/{case_id}/decide", json={"choice": "zz", "request_id": "req-2"}
    ).status_code in (409, 422)
    assert alice.get("/api/cases/nope").status_code == 404
    assert (
        alice.post(
            f"/api/cases/{case_id}/decide", json={"choice": "c1", "edited_text": "x"}
        ).status_code
        == 422
    )
    assert alice.post("/api/login", json={"token": "bad"}).status_code == 401


HOT = "application/json"
"""The content type the hot path answers (``oversight.web.hot_routes``); with a charset
parameter the same request goes through FastAPI's route."""
ROUTED = "application/json; charset=utf-8"


def _same_shape(reply: Any, ids: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body with case ids named by role and times and decision ids
    replaced by their type, so replies about different cases can be compared."""
    headers = {k: v for k, v in reply.headers.items() if k != "content-length"}
    text = reply.text
    for case_id, role in ids.items():
        text = text.replace(case_id, role)
    body = json.loads(text)
    if isinstance(body, dict):
        for key in ("id", "claimed_at", "expires_at", "created_at"):
            if key in body:
                body[key] = type(body[key]).__name__
    return reply.status_code, headers, body


def test_the_hot_path_answers_claim_and_decide_as_the_routes_do(
    app: Any, accounts: ReviewerAccounts, queue: HumanQueue
) -> None:
    alice = api_client(app, accounts, "alice")
    bob = api_client(app, accounts, "bob")
    hot, routed = queue.submit(submission("ep-hot")), queue.submit(submission("ep-routed"))
    ids = {hot: "<case>", routed: "<case>"}

    def both(client: TestClient, action: str, body: str, *, case: str = "") -> None:
        replies = []
        for case_id, content_type in ((hot, HOT), (routed, ROUTED)):
            path = f"/api/cases/{case or case_id}/{action}"
            headers = {"Content-Type": content_type}
            replies.append(client.post(path, content=body.replace("@", case_id), headers=headers))
        assert _same_shape(replies[0], ids) == _same_shape(replies[1], ids)

    both(bob, "decide", '{"choice": "c1"}')  # 409: no claim held
    both(alice, "claim", "")  # 200, the queue's lease
    both(alice, "claim", '{"lease_seconds": 60}')  # 200, renewed
    both(bob, "claim", "{}")  # 409: the one place is held
    both(alice, "decide", '{"choice": "zz"}')  # 409: no such candidate
    both(alice, "decide", '{"choice": "c1", "request_id": "r-@"}')  # 200
    both(alice, "decide", '{"choice": "c1", "request_id": "r-@"}')  # 200, the same record
    both(alice, "claim", "")  # 409: decided
    both(alice, "claim", "", case="nope")  # 404
    # What the hot path leaves to FastAPI answers the same either way (422, 401).
    both(alice, "decide", '{"choice": "c1", "edited_text": "x"}')
    both(alice, "claim", '{"lease_seconds": -1}')
    both(alice, "decide", "[1]")
    both(alice, "decide", "{")
    stranger = TestClient(app, headers={"Authorization": "Bearer nope"})
    both(stranger, "claim", "")
    assert [d.reviewer for d in queue.get(hot).decisions] == ["alice"]
    assert [d.reviewer for d in queue.get(routed).decisions] == ["alice"]


def test_the_hot_path_takes_only_the_plain_form_of_a_request() -> None:
    from oversight.web.hot_routes import _bearer, _parse

    def scope(*headers: tuple[str, str]) -> dict[str, Any]:
        return {"headers": [(k.encode(), v.encode()) for k, v in headers]}

    auth, json_type = ("Authorization", "Bearer s1"), ("Content-Type", "application/json")
    assert _bearer(scope(auth, json_type)) == "s1"
    assert _bearer(scope(("authorization", "bearer  s1 "), json_type)) == "s1"
    assert _bearer(scope(json_type)) is None  # no session: FastAPI's 401
    assert _bearer(scope(("Cookie", "oversight_session=s"), json_type)) is None  # CSRF rules
    # A bearer session wins over a cookie, as in api_credentials.
    assert _bearer(scope(auth, json_type, ("Cookie", "oversight_session=s"))) == "s1"
    assert _bearer(scope(auth, json_type, auth)) is None
    assert _bearer(scope(auth, ("Content-Type", "text/plain"))) is None
    assert _bearer(scope(auth)) is None
    assert _parse("claim", b"") == (None,)
    assert _parse("decide", b"") is None
    assert _parse("claim", b"null") is None
    assert _parse("decide", b'{"choice": "a", "extra": 1}') is None
    parsed = _parse("decide", b'{"choice": "a", "request_id": "r"}')
    assert parsed is not None and parsed[0] is not None and parsed[0].choice == "a"


def test_openapi_documents_the_api_only(app: Any) -> None:
    schema = TestClient(app).get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {
        "/api/login",
        "/api/cases",
        "/api/cases/{case_id}",
        "/api/cases/{case_id}/claim",
        "/api/cases/{case_id}/decide",
    } <= paths
    assert not any(not p.startswith("/api/") for p in paths)
    components = schema["components"]["schemas"]
    choose, edit = (
        components["ChooseCandidate"]["properties"],
        components["EditAnswer"]["properties"],
    )
    common = {"rationale", "principle_tags", "request_id", "tie_break"}
    assert {"choice", *common} == set(choose) and {"edited_text", *common} == set(edit)


def test_cli_add_reviewer_prints_a_working_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    root = typer.Typer()
    web_cli.register(root)
    web_cli.register(root)  # idempotent
    result = CliRunner().invoke(root, ["queue", "--queue", url, "add-reviewer", "carol", "--admin"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[0]
    with HumanQueue(url) as queue:
        session = ReviewerAccounts(queue.store).login(token)
    assert session.reviewer.name == "carol" and session.reviewer.admin
    bad = CliRunner().invoke(root, ["queue", "--queue", url, "add-reviewer", "<bad name>"])
    assert bad.exit_code == 2 and "not allowed" in bad.output


@pytest.mark.postgres
def test_review_flow_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    prefix = f"w{uuid.uuid4().hex[:10]}_"
    queue = HumanQueue(postgres_url, table_prefix=prefix)
    accounts = ReviewerAccounts(queue.store, table_prefix=prefix)
    try:
        app = create_app(queue, accounts, runs_dir=tmp_path)
        case_id = queue.submit(submission(evil=True))
        client = login(app, accounts, "alice")
        assert case_id[:8] in client.get("/").text
        client.post(f"/cases/{case_id}/claim", data={"csrf": csrf_of(client)})
        form = {"csrf": csrf_of(client), "choice": "c1", "request_id": "pg-1"}
        assert client.post(f"/cases/{case_id}/decide", data=form).status_code == 303
        assert client.post(f"/cases/{case_id}/decide", data=form).status_code == 303
        case = queue.get(case_id)
        assert case.status == "decided" and len(case.decisions) == 1
        assert audit(client.get(f"/cases/{case_id}").text).problems == []
    finally:
        accounts.metadata.drop_all(queue.store.engine)
        queue.store.drop_all()
        queue.close()


def test_the_case_page_shows_uncertainty_notes_and_checked_claims_escaped(
    app: Any, queue: HumanQueue, accounts: ReviewerAccounts
) -> None:
    case = submission()
    details = dict(case.details)
    details["uncertainty"] = [
        {
            "payload": {
                "kind": "uncertainty_note",
                "candidate_id": "c0",
                "confidence": 0.23,
                "raw_confidence": 0.31,
                "agreement": 0.4,
                "samples": 4,
                "token_confidence": 0.2,
                "uncertain_spans": [f"Here is how {XSS['script']}"],
                "action": "hedge",
                "rationale": "4 samples agree 0.40",
            }
        }
    ]
    details["verifications"] = [
        {
            "payload": {
                "kind": "verification",
                "candidate_id": "c0",
                "index": "corpus",
                "claims": [
                    {
                        "text": f"Bats are blind {XSS['handler']}",
                        "status": "contradicted",
                        "source": "animals:0",
                        "evidence": "Bats are not blind.",
                    }
                ],
            }
        }
    ]
    case_id = queue.submit(case.model_copy(update={"details": details}))
    client = login(app, accounts, "ana")
    page = client.get(f"/cases/{case_id}").text
    assert "Uncertainty notes" in page and "0.23" in page and "hedge" in page
    assert "Claims checked against evidence" in page and "animals:0" in page
    assert "Bats are not blind." in page and "contradicted" in page
    assert XSS["script"] not in page and XSS["handler"] not in page
