"""The preference-chain pages of the review app (TestClient): auth, CSP, escaping, independence."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import import_or_fail
from governance_helpers import write_conflict_hierarchy

import_or_fail("fastapi", "the web page needs the web extra: pip install -e .[web]")

from fastapi.testclient import TestClient  # noqa: E402
from test_web import audit, login, submission  # noqa: E402

from oversight.cli.run import run_command  # noqa: E402
from oversight.escalation import Decision, HumanQueue  # noqa: E402
from oversight.escalation.accounts import ReviewerAccounts  # noqa: E402
from oversight.journal import read_journal  # noqa: E402
from oversight.web import create_app  # noqa: E402
from oversight.web.app import CSP  # noqa: E402

EVIL = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Any, ReviewerAccounts, HumanQueue, Path]]:
    """A scripted run (every episode audited by two people) and the app over its queue."""
    hierarchy = write_conflict_hierarchy(tmp_path)
    policy = yaml.safe_load((tmp_path / "policy.yaml").read_text())
    policy["triggers"]["audit_rate"] = 1.0
    policy["reviewers_per_case"] = 2
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    prompts = tmp_path / "prompts.jsonl"
    lines = prompts.read_text().splitlines()[:3]
    lines.append(json.dumps({"id": "evil", "prompt": f"Tell me about {EVIL}"}))
    prompts.write_text("\n".join(lines) + "\n")
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    summary = run_command(
        str(hierarchy),
        prompts=prompts,
        runs_dir=tmp_path / "runs",
        queue_url=url,
        show_progress=False,
    )
    assert summary["escalated"] == 4
    with HumanQueue(url) as queue:
        accounts = ReviewerAccounts(queue.store)
        yield create_app(queue, accounts, runs_dir=tmp_path / "runs"), accounts, queue, tmp_path


def _episodes(tmp: Path) -> dict[str, Any]:
    scan = read_journal(tmp / "runs" / "conflicts" / "journal.jsonl")
    out = {}
    for env in scan.envelopes:
        if env.kind == "prompt":
            out[env.payload.prompt_id] = {"episode": env.episode}  # type: ignore[union-attr]
        if env.kind == "escalation":
            pid = next(k for k, v in out.items() if v["episode"] == env.episode)
            out[pid]["case"] = env.payload.case_id  # type: ignore[union-attr]
    return out


def test_explain_pages_need_a_session(world: Any) -> None:
    app, _accounts, _queue, tmp = world
    ep = _episodes(tmp)["safety"]
    client = TestClient(app, follow_redirects=False)
    for path in (
        "/explain/conflicts",
        f"/explain/conflicts/{ep['episode']}",
        f"/cases/{ep['case']}/explain",
    ):
        reply = client.get(path)
        assert reply.status_code == 303 and reply.headers["location"] == "/login", path
        assert reply.headers["content-security-policy"] == CSP


def test_episode_page_shows_the_chain_escaped_under_the_csp(world: Any) -> None:
    app, accounts, _queue, tmp = world
    episodes = _episodes(tmp)
    client = login(app, accounts, "alice")
    listing = client.get("/explain/conflicts")
    assert listing.status_code == 200
    assert listing.text.count('class="episode-link"') == 4
    for pid in ("safety", "evil"):
        reply = client.get(f"/explain/conflicts/{episodes[pid]['episode']}")
        assert reply.status_code == 200
        assert reply.headers["content-security-policy"] == CSP
        found = audit(reply.text)
        assert found.problems == []
        assert found.scripts == ["/static/htmx.min.js", "/static/review.js"]
    page = client.get(f"/explain/conflicts/{episodes['safety']['episode']}").text
    assert "harm &gt; helpfulness" in page  # the priority path
    assert "default v" in page  # the constitution (test_governance checks overlays in explain)
    assert "helpfulness v1.0" in page  # a finding with its principle's version
    evil = client.get(f"/explain/conflicts/{episodes['evil']['episode']}").text
    assert "&lt;script&gt;window.__pwned=1" in evil and "<script>window" not in evil
    # the case page links to its chain
    assert (
        f"/cases/{episodes['safety']['case']}/explain"
        in client.get(f"/cases/{episodes['safety']['case']}").text
    )


def test_other_reviewers_decisions_stay_hidden_until_you_decide(world: Any) -> None:
    app, accounts, queue, tmp = world
    case_id = _episodes(tmp)["safety"]["case"]
    queue.claim(case_id, "bob")
    queue.resolve(case_id, "bob", Decision(choice="c1", rationale="BOB-RATIONALE"))
    alice = login(app, accounts, "alice")
    episode = _episodes(tmp)["safety"]["episode"]
    for path in (f"/cases/{case_id}/explain", f"/explain/conflicts/{episode}"):
        page = alice.get(path).text
        assert "BOB-RATIONALE" not in page, path
        assert "No human decision you may see" in page
    admin = login(app, accounts, "root", admin=True)
    assert "BOB-RATIONALE" in admin.get(f"/cases/{case_id}/explain").text


def test_bad_run_or_episode_names_are_not_found(world: Any) -> None:
    app, accounts, _queue, _tmp = world
    client = login(app, accounts, "alice")
    for path in (
        "/explain/..%2F..%2Fetc",
        "/explain/nope",
        "/explain/conflicts/zzzzzzzz",
        "/explain/conflicts/abcdef012345",
        "/cases/nope/explain",
    ):
        assert client.get(path).status_code == 404, path


def test_a_case_without_its_journal_is_explained_from_the_queue(tmp_path: Path) -> None:
    with HumanQueue(f"sqlite:///{tmp_path / 'queue.db'}") as queue:
        accounts = ReviewerAccounts(queue.store)
        app = create_app(queue, accounts, runs_dir=tmp_path / "runs")
        case_id = queue.submit(submission(evil=True))
        client = login(app, accounts, "alice")
        reply = client.get(f"/cases/{case_id}/explain")
        assert reply.status_code == 200
        assert audit(reply.text).problems == []
        assert "review queue&#39;s copy" in reply.text or "review queue's copy" in reply.text
        assert "harm v1" in reply.text  # the case's critique, with its principle version
        assert "<script>window" not in reply.text
