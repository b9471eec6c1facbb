"""The review server as a real uvicorn process: racing reviewers, retries and ``kill -9``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import import_or_fail

import_or_fail("uvicorn", "the web page needs the web extra")
httpx = import_or_fail("httpx")

from oversight.escalation import CaseSubmission, HumanQueue  # noqa: E402
from oversight.escalation.accounts import ReviewerAccounts  # noqa: E402

LAUNCH = (
    "import sys, typer\n"
    "from oversight.cli import web\n"
    "app = typer.Typer()\n"
    "web.register(app)\n"
    "app(sys.argv[1:])\n"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``oversight queue serve`` in a child process on 127.0.0.1 (for tests and benchmarks)."""

    def __init__(
        self, url: str, *, runs_dir: Path | None = None, log: Path | None = None, workers: int = 1
    ):
        self.url = url
        self.workers = workers
        self.runs_dir = runs_dir
        self.log = log
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        args = [sys.executable, "-c", LAUNCH, "queue", "--queue", self.url, "serve"]
        args += ["--port", str(self.port)]
        if self.runs_dir is not None:
            args += ["--runs-dir", str(self.runs_dir)]
        if self.workers > 1:
            args += ["--workers", str(self.workers)]
        if self.log is None:
            self.proc = subprocess.Popen(
                args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
            )
        else:
            with self.log.open("ab") as out:
                self.proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)
        timeout *= self.workers  # each worker process imports the app first
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log}")
            try:
                if httpx.get(f"{self.base}/login", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server on {self.base} did not answer in {timeout} s")

    def kill(self) -> None:
        """``kill -9`` of the server and its worker processes: no shutdown handlers run."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: workers die with it
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10 * self.workers)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # any worker the server left behind

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def api_session(base: str, token: str) -> httpx.Client:
    reply = httpx.post(f"{base}/api/login", json={"token": token}, timeout=10)
    reply.raise_for_status()
    headers = {"Authorization": f"Bearer {reply.json()['session']}"}
    return httpx.Client(base_url=base, headers=headers, timeout=30)


def make_cases(url: str, n: int, reviewers: int = 1) -> list[str]:
    with HumanQueue(url) as queue:
        return [
            queue.submit(
                CaseSubmission(
                    run="srv",
                    episode=f"ep-{i}",
                    prompt=[{"role": "user", "content": f"question {i}"}],
                    candidates=[{"id": "a", "text": "A"}, {"id": "b", "text": "B"}],
                    reviewers_required=reviewers,
                )
            )
            for i in range(n)
        ]


def tokens(url: str, *names: str) -> list[str]:
    with HumanQueue(url) as queue:
        accounts = ReviewerAccounts(queue.store)
        return [accounts.add_reviewer(name) for name in names]


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'queue.db'}"


@pytest.fixture
def server(db: str, tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(db, log=tmp_path / "server.log") as srv:
        yield srv


def race(*calls: Any) -> list[Any]:
    """Run the calls in threads released together; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_two_reviewers_racing_for_one_place_exactly_one_wins(
    db: str, server: ServerProcess
) -> None:
    cases = make_cases(db, 8)
    alice, bob = (api_session(server.base, t) for t in tokens(db, "alice", "bob"))
    with alice, bob:
        race_each(cases, alice, bob)
    with HumanQueue(db) as queue:
        for case_id in cases:
            case = queue.get(case_id)
            assert case.status == "decided" and len(case.decisions) == 1


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_several_server_processes_decide_each_case_exactly_once(
    store: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if store == "sqlite":
        url = f"sqlite:///{tmp_path / 'queue.db'}"
    else:  # a fresh schema, so the server's default table names cannot meet other tests'
        import sqlalchemy as sa

        base = request.getfixturevalue("postgres_url")
        schema = f"ws_{uuid.uuid4().hex[:10]}"
        admin = sa.create_engine(base)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        query = {"options": f"-csearch_path={schema}"}
        url = sa.make_url(base).update_query_dict(query).render_as_string(hide_password=False)
        request.addfinalizer(lambda: drop_schema(admin, schema))
    cases = make_cases(url, 24, reviewers=2)
    names = [f"r{i}" for i in range(6)]
    with ServerProcess(url, log=tmp_path / "server.log", workers=2) as server:
        clients = [api_session(server.base, t) for t in tokens(url, *names)]
        try:
            for case_id in cases:  # six reviewers race for two places, then all decide
                claims = race(
                    *[lambda c=c, k=case_id: c.post(f"/api/cases/{k}/claim") for c in clients]
                )
                assert sorted(r.status_code for r in claims) == [200] * 2 + [409] * 4
                decided = race(
                    *[
                        lambda c=c, i=i, k=case_id: c.post(
                            f"/api/cases/{k}/decide",
                            json={"choice": "a", "request_id": f"{k}-{i}"},
                        )
                        for i, c in enumerate(clients)
                    ]
                )
                assert sorted(r.status_code for r in decided) == [200] * 2 + [409] * 4
        finally:
            for client in clients:
                client.close()
    with HumanQueue(url) as queue:
        for case_id in cases:
            case = queue.get(case_id)
            assert case.status == "decided" and len(case.decisions) == 2


def drop_schema(engine: Any, schema: str) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def race_each(cases: list[str], alice: httpx.Client, bob: httpx.Client) -> None:
    for case_id in cases:
        codes = race(
            lambda c=case_id: alice.post(f"/api/cases/{c}/claim").status_code,
            lambda c=case_id: bob.post(f"/api/cases/{c}/claim").status_code,
        )
        assert sorted(codes) == [200, 409], codes
        replies = race(
            lambda c=case_id: alice.post(
                f"/api/cases/{c}/decide", json={"choice": "a", "request_id": f"a{c}"}
            ),
            lambda c=case_id: bob.post(
                f"/api/cases/{c}/decide", json={"choice": "a", "request_id": f"b{c}"}
            ),
        )
        assert sorted(r.status_code for r in replies) == [200, 409]


def test_a_retried_decision_applies_once_even_when_sent_in_parallel(
    db: str, server: ServerProcess
) -> None:
    (case_id,) = make_cases(db, 1)
    body = {"choice": "b", "request_id": "same-request"}
    with api_session(server.base, tokens(db, "alice")[0]) as alice:
        assert alice.post(f"/api/cases/{case_id}/claim").status_code == 200
        replies = race(*[lambda: alice.post(f"/api/cases/{case_id}/decide", json=body)] * 4)
    assert [r.status_code for r in replies] == [200] * 4
    assert len({r.json()["id"] for r in replies}) == 1
    with HumanQueue(db) as queue:
        assert len(queue.get(case_id).decisions) == 1


def test_kill_9_mid_decisions_loses_nothing_and_duplicates_nothing(db: str, tmp_path: Path) -> None:
    cases = make_cases(db, 60)
    (token,) = tokens(db, "alice")
    first = ServerProcess(db, log=tmp_path / "first.log").start()
    client = api_session(first.base, token)
    confirmed: dict[str, str] = {}
    stop = threading.Event()

    def decide_all(http: httpx.Client, record: dict[str, str]) -> None:
        for case_id in cases:
            if stop.is_set() and http is client:
                return
            try:
                claim = http.post(f"/api/cases/{case_id}/claim")
                if claim.status_code not in (200, 409):
                    claim.raise_for_status()
                reply = http.post(
                    f"/api/cases/{case_id}/decide",
                    json={"choice": "a", "request_id": f"req-{case_id}"},
                )
            except httpx.TransportError:
                return  # the server died under us
            if reply.status_code == 200:
                record[case_id] = reply.json()["id"]

    worker = threading.Thread(target=decide_all, args=(client, confirmed))
    worker.start()
    while len(confirmed) < 10 and worker.is_alive():
        time.sleep(0.005)
    first.kill()  # requests are in flight: mid-decision
    stop.set()
    worker.join(30)
    client.close()
    assert 10 <= len(confirmed) < len(cases)

    with ServerProcess(db, log=tmp_path / "second.log") as second:
        retry = httpx.Client(
            base_url=second.base, headers=dict(client.headers), timeout=30
        )  # the session survived the crash: it lives in the database
        after: dict[str, str] = {}
        decide_all(retry, after)
        retry.close()
    assert set(after) == set(cases)  # every case decided (a retry returns the first record)
    assert all(after[c] == confirmed[c] for c in confirmed)  # nothing applied twice
    with HumanQueue(db) as queue:
        for case_id in cases:
            case = queue.get(case_id)
            assert case.status == "decided" and len(case.decisions) == 1
            assert case.decisions[0].request_id == f"req-{case_id}"
