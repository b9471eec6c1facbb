"""The review page in a real browser: Playwright driving Debian's Chromium against uvicorn.

Logs in with a token, claims a case and decides it with the keyboard, sees it leave the list,
opens the case's preference chain, and checks that XSS payloads planted in the prompt, answers
and critiques do not execute on any of these pages. A stakeholder votes on proposals on the
votes page. Screenshots of the list, case and votes pages are saved under the test's tmp
directory.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import import_or_fail, requires

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.browser,
    requires(CHROMIUM.exists(), f"no Chromium at {CHROMIUM}: run `make browser-deps`"),
]
sync_api = import_or_fail("playwright.sync_api", "pip install playwright")
import_or_fail("uvicorn", "the web page needs the web extra")

from test_web import XSS, submission  # noqa: E402
from test_web_server import ServerProcess, tokens  # noqa: E402

from oversight.escalation import HumanQueue  # noqa: E402
from oversight.escalation.votes import StakeholderVotes  # noqa: E402

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PWNED = "() => [window.__pwned, document.title]"


def test_login_claim_decide_by_keyboard_and_xss_stays_inert(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with HumanQueue(url) as queue:
        evil = queue.submit(submission("evil", evil=True, priority=9))
        calm = queue.submit(submission("calm", priority=1))
    (token,) = tokens(url, "alice")
    console: list[str] = []
    with (
        ServerProcess(url, log=tmp_path / "server.log") as server,
        sync_api.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: console.append(msg.text))
            page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
            page.goto(f"{server.base}/")
            assert page.url.endswith("/login")
            page.fill("#token", token)
            page.press("#token", "Enter")
            page.wait_for_selector("table.cases")
            assert page.locator("a.case-link").count() == 2
            page.screenshot(path=str(tmp_path / "list.png"), full_page=True)
            assert page.evaluate(PWNED) == [None, "Cases - oversight review"]

            # Keyboard: j selects the first row (highest priority: the evil case), Enter opens.
            page.keyboard.press("j")
            page.keyboard.press("Enter")
            page.wait_for_selector("#claim-form")
            assert evil in page.url
            assert page.evaluate(PWNED)[0] is None
            assert page.locator("text=window.__pwned=1").count() >= 1  # shown as text
            page.screenshot(path=str(tmp_path / "case.png"), full_page=True)

            page.keyboard.press("c")  # claim
            page.wait_for_selector("#decide-form")
            page.keyboard.press("2")  # candidate 2 = c1
            page.keyboard.press("r")  # rationale
            page.keyboard.type("safe and helpful (decided by keyboard)")
            page.screenshot(path=str(tmp_path / "decide.png"), full_page=True)
            page.keyboard.press("Control+Enter")
            page.wait_for_url(re.compile(r"/$"))
            page.wait_for_selector("table.cases")
            links = page.locator("a.case-link").all_inner_texts()
            assert links == [calm[:8]]  # the decided case left the list
            assert page.evaluate(PWNED)[0] is None
            page.screenshot(path=str(tmp_path / "after.png"), full_page=True)

            # The preference chain of the decided case, linked from its page: the payloads
            # planted in the prompt, answers and critiques stay text there too.
            page.goto(f"{server.base}/cases/{evil}")
            page.click("#explain-link")
            page.wait_for_selector("#explain")
            assert page.evaluate(PWNED)[0] is None
            assert page.locator("#findings").count() == 1
            assert page.locator("text=alice").count() >= 1  # her decision, now settled
            assert page.locator("text=window.__pwned=1").count() >= 1  # shown, as text
            page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)
        finally:
            browser.close()
    with HumanQueue(url) as queue:
        final = queue.final_decision(evil)
    assert final is not None
    assert final.choice == "c1" and final.reviewer == "alice"
    assert final.rationale == "safe and helpful (decided by keyboard)"
    assert not [m for m in console if "Content Security Policy" in m or "pageerror" in m], console


class PatientServer(ServerProcess):
    """The server, given more time to start on a loaded machine (CI shares two cores)."""

    def __enter__(self) -> ServerProcess:
        return self.start(timeout=120)


@pytest.mark.timeout(300)
def test_stakeholder_votes_on_the_votes_page(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with HumanQueue(url) as queue:
        ballot = StakeholderVotes(queue.store)
        edge = ballot.propose(
            "edge",
            {"winner": "privacy", "loser": "helpfulness"},
            by="root",
            rationale=f"policy paragraph 3 {XSS['script']}",
        )
        weight = ballot.propose("weight", {"principle_id": "harm", "weight": 1.3}, by="root")
        token = ballot.accounts.add_reviewer("sam", stakeholder=True)
    console: list[str] = []
    with (
        PatientServer(url, log=tmp_path / "server.log") as server,
        sync_api.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: console.append(msg.text))
            page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
            page.goto(f"{server.base}/login")
            page.fill("#token", token)
            page.press("#token", "Enter")
            page.wait_for_selector("text=Log out")
            page.click("nav >> text=Votes")
            page.wait_for_selector("section.proposal")
            assert page.locator("form.vote-form").count() == 2
            assert page.locator(f"#p-{edge} .counts").count() == 0  # hidden before voting
            assert page.locator("text=window.__pwned=1").count() >= 1  # shown as text
            page.screenshot(path=str(tmp_path / "votes.png"), full_page=True)
            page.fill(f"#p-{edge} input[name=comment]", "privacy first")
            page.click(f"#p-{edge} button[value=approve]")
            page.wait_for_selector(f"#p-{edge} .my-vote")
            assert "approve" in page.inner_text(f"#p-{edge} .my-vote")
            counts = " ".join(page.inner_text(f"#p-{edge} .counts").split())
            assert counts.startswith("approve 1 , reject 0"), counts
            page.click(f"#p-{weight} button[value=reject]")
            page.wait_for_selector(f"#p-{weight} .my-vote")
            assert page.locator("form.vote-form").count() == 0
            assert page.evaluate(PWNED)[0] is None
            page.screenshot(path=str(tmp_path / "voted.png"), full_page=True)
        finally:
            browser.close()
    with HumanQueue(url) as queue:
        report = StakeholderVotes(queue.store).tally()
    assert [(t.approve, t.reject) for t in report.proposals] == [(1, 0), (0, 1)]
    assert report.overlay is not None and report.overlay.add_priorities == (
        ("privacy", "helpfulness"),
    )
    assert not [m for m in console if "Content Security Policy" in m or "pageerror" in m], console
