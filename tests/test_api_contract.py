"""The review API's contract: its OpenAPI schema says what the server enforces.

The schema is checked for what a client generated from it must know (documented errors, the
status enum, the decision's "exactly one of" rule, security schemes); then schemathesis fuzzes a
real ``oversight queue serve`` process from that schema with every check (``--checks all``:
no server error, status codes, content types, headers and bodies conform to the schema,
schema-valid requests accepted, invalid ones rejected, auth enforced), logged in with a bearer
session, with a fixed seed and a fixed number of examples per operation so CI stays bounded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import import_or_fail

import_or_fail("fastapi", "the web page needs the web extra")
import_or_fail("uvicorn", "the web page needs the web extra")
import_or_fail("schemathesis", "pip install 'oversight[dev]' (schemathesis)")

from fastapi.testclient import TestClient  # noqa: E402
from test_web import submission  # noqa: E402
from test_web_server import ServerProcess, api_session  # noqa: E402

from oversight.escalation import HumanQueue  # noqa: E402
from oversight.escalation.accounts import ReviewerAccounts  # noqa: E402
from oversight.escalation.votes import StakeholderVotes  # noqa: E402
from oversight.web import create_app  # noqa: E402

MAX_EXAMPLES = 10
"""Examples per operation and phase: about 30 s for the whole run on a 2-core machine."""
SEED = 1


@pytest.fixture
def schema(tmp_path: Path) -> dict[str, Any]:
    with HumanQueue(f"sqlite:///{tmp_path / 'q.db'}") as queue:
        app = create_app(queue, ReviewerAccounts(queue.store))
        reply = TestClient(app).get("/openapi.json")
    assert reply.status_code == 200
    data: dict[str, Any] = reply.json()
    return data


def operations(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        f"{method.upper()} {path}": op
        for path, item in schema["paths"].items()
        for method, op in item.items()
    }


def test_every_route_documents_its_errors(schema: dict[str, Any]) -> None:
    ops = operations(schema)
    for name, op in ops.items():
        responses = op["responses"]
        assert "500" not in responses, name
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ApiError"), (name, code)
        if "{case_id}" in name:
            assert "404" in responses, name
        if name != "POST /api/login":
            assert "401" in responses and op["security"], name
        if name.startswith("POST") and name != "POST /api/login":
            assert "403" in responses, name  # a cookie session without its CSRF header
    assert "409" in ops["POST /api/cases/{case_id}/decide"]["responses"]
    vote = ops["POST /api/proposals/{proposal_id}/vote"]["responses"]
    assert {"403", "404", "409"} <= set(vote)  # not a stakeholder, no proposal, changed vote
    assert "401" in ops["POST /api/login"]["responses"]  # a spent token
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["session_cookie"]["in"] == "cookie"


def test_status_is_an_enum_and_a_decision_is_one_of_two_shapes(schema: dict[str, Any]) -> None:
    listing = operations(schema)["GET /api/cases"]
    status = next(p for p in listing["parameters"] if p["name"] == "status")
    assert status["schema"]["enum"] == ["open", "tie", "decided", "withdrawn", "all"]
    components = schema["components"]["schemas"]
    summary_status = components["CaseSummary"]["properties"]["status"]
    assert set(summary_status["enum"]) == {"open", "tie", "decided", "withdrawn"}
    decide = components["DecideRequest"]
    shapes = [ref["$ref"].rsplit("/", 1)[1] for ref in decide["oneOf"]]
    assert shapes == ["ChooseCandidate", "EditAnswer"]
    choose, edit = (components[name] for name in shapes)
    assert choose["required"] == ["choice"] and "edited_text" not in choose["properties"]
    assert edit["required"] == ["edited_text"] and "choice" not in edit["properties"]
    assert choose["additionalProperties"] is False and edit["additionalProperties"] is False
    assert edit["properties"]["edited_text"]["pattern"] == r"\S"


def test_the_server_enforces_the_one_of_rule(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    with HumanQueue(url) as queue:
        case_id = queue.submit(submission())
        app = create_app(queue, ReviewerAccounts(queue.store))
        client = TestClient(app)
        token = ReviewerAccounts(queue.store).add_reviewer("alice")
        session = client.post("/api/login", json={"token": token}).json()["session"]
        client.headers["Authorization"] = f"Bearer {session}"
        assert client.post(f"/api/cases/{case_id}/claim").status_code == 200
        for body in ({}, {"choice": "c1", "edited_text": "x"}, {"edited_text": "  "}):
            reply = client.post(f"/api/cases/{case_id}/decide", json=body)
            assert reply.status_code == 422, body
            assert set(reply.json()) == {"error"}
        assert client.post("/api/login", json={"token": token}).status_code == 401  # spent
        bad = client.get("/api/cases", params={"status": "bogus"})
        assert bad.status_code == 422 and "status" in bad.json()["error"]
        assert client.get("/api/cases", params={"offset": 2**63}).status_code == 422
        unknown = client.post(f"/api/cases/{case_id}/decide", json={"choice": "zz"})
        assert unknown.status_code == 409 and "no candidate" in unknown.json()["error"]
        assert queue.get(case_id).decisions == ()


def schemathesis_cli() -> str:
    beside = Path(sys.executable).parent / "schemathesis"
    found = str(beside) if beside.exists() else shutil.which("schemathesis")
    assert found, "schemathesis is installed but its command is not on PATH"
    return found


@pytest.mark.timeout(360)  # about 30 s idle; a loaded 2-core machine needs several times that
def test_fuzzing_from_the_schema_finds_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    with HumanQueue(url) as queue:
        for i in range(3):
            queue.submit(submission(f"ep-{i}", reviewers=2))
        ballot = StakeholderVotes(queue.store)
        ballot.propose("edge", {"winner": "privacy", "loser": "helpfulness"}, by="root")
        token = ballot.accounts.add_reviewer("fuzz", stakeholder=True)
    server = ServerProcess(url, log=tmp_path / "server.log").start(timeout=120)
    try:
        with api_session(server.base, token) as client:
            bearer = client.headers["Authorization"]
        command = [
            schemathesis_cli(),
            "run",
            f"{server.base}/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: {bearer}",
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--no-color",
        ]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path
        )
    finally:
        server.stop()
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    assert "No issues found" in out, out[-3000:]
    log = (tmp_path / "server.log").read_text()
    assert "Traceback" not in log, log[-3000:]
