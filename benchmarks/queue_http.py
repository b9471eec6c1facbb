"""Review server throughput: reviewer processes claim and decide through the HTTP API.

For each database (a fresh SQLite file; a fresh schema on the PostgreSQL server) and each server
configuration, starts ``oversight queue serve`` (uvicorn, child processes), submits ``--cases``
cases, logs ``--reviewers`` reviewers in through ``POST /api/login`` and starts one **process**
per reviewer; each keeps one keep-alive connection and takes the next case, ``POST .../claim``,
``POST .../decide`` (with a request id) until the cases run out. Reports decisions/s (wall clock,
all reviewers together), p50/p99 latency of claim and decide in ms, the server's and the
reviewers' CPU time per decision, the load average before and after each run, and checks that
every case was decided exactly once.

The baseline runs in the same invocation: the server of ``--baseline-ref`` (default ``main``,
extracted with ``git archive``; one worker, as main serves) on the same database, cases and
reviewers. Without git (an installed package) the baseline is left out and the JSON says so.

    python benchmarks/queue_http.py                       # what the README cites
    python benchmarks/queue_http.py --workers 1,2 --databases sqlite --cases 600
    python benchmarks/queue_http.py --out benchmarks/results/queue_http_idle.json

(Not ``benchmarks/queue.py``: a script of that name shadows the standard library's ``queue``
module for every script in this folder, and networkx imports ``queue``.)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from oversight.escalation import CaseSubmission, HumanQueue
from oversight.escalation.accounts import ReviewerAccounts

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get(
    "OVERSIGHT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
LAUNCH = (
    "import sys, typer\n"
    "from oversight.cli import web\n"
    "app = typer.Typer()\n"
    "web.register(app)\n"
    "app(sys.argv[1:])\n"
)
GOAL = {"decisions_per_s": 500, "claim_ms_p99": 50}


def machine() -> dict[str, Any]:
    """CPU model, the flags that matter for Python servers, cores, memory."""
    model, flags = platform.processor() or "unknown", set[str]()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile", "hypervisor")
    return {
        "cpu_model": model,
        "cpu_flags": [f for f in wanted if f in flags],
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/login")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def baseline_tree(ref: str, into: Path) -> Path | None:
    """``ref``'s ``oversight`` package extracted under ``into`` (None without git)."""
    try:
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", ref, "oversight"],
            check=True,
            capture_output=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


@contextmanager
def database(kind: str, tmp: Path, postgres_url: str) -> Iterator[str]:
    """A fresh, empty queue database URL: a new SQLite file, or a new PostgreSQL schema."""
    if kind == "sqlite":
        path = tmp / f"queue-{uuid.uuid4().hex[:8]}.db"
        yield f"sqlite:///{path}"
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def postgres_reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def prepare(url: str, cases: int, reviewers: int) -> tuple[list[str], list[str]]:
    """Submit the cases and create the reviewers; returns case ids and login tokens."""
    with HumanQueue(url) as hq:
        accounts = ReviewerAccounts(hq.store)
        tokens = [accounts.add_reviewer(f"r{i}") for i in range(reviewers)]
        ids = [
            hq.submit(
                CaseSubmission(
                    run="bench",
                    episode=f"ep-{i}",
                    prompt=[{"role": "user", "content": f"question {i}"}],
                    candidates=[{"id": "a", "text": "A"}, {"id": "b", "text": "B"}],
                    principles=["harm"],
                    triggers=["disagreement"],
                )
            )
            for i in range(cases)
        ]
    return ids, tokens


def login(port: int, token: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/api/login", body=json.dumps({"token": token}),
                 headers={"Content-Type": "application/json"})  # fmt: skip
    reply = conn.getresponse()
    body = reply.read()
    conn.close()
    if reply.status != 200:
        raise SystemExit(f"login failed with {reply.status}: {body[:200]!r}")
    return str(json.loads(body)["session"])


class Connection:
    """A keep-alive HTTP/1.1 connection for the reviewer processes: requests written as bytes,
    replies read by ``Content-Length``. ``http.client`` builds header objects through the email
    parser for every reply, which on a 2-core machine took CPU from the server it measures;
    this is still real HTTP over TCP, with the same headers a reviewer's client sends."""

    def __init__(self, port: int, session: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = (
            "Host: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {session}\r\n"
        ).encode()
        self.buffer = b""

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s" % (
            path.encode(),
            self.head,
            len(body),
            body,
        )
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self.read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = next(
            int(line.split(b":", 1)[1])
            for line in lines[1:]
            if line[:15].lower() == b"content-length:"
        )
        while len(self.buffer) < length:
            self.read()
        data, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, data

    def read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def reviewer(
    port: int,
    session: str,
    case_ids: list[str],
    counter: Any,
    gate: Any,
    results: Any,
) -> None:
    """One reviewer process: claim and decide the next case until none is left."""
    conn = Connection(port, session)
    claims: list[float] = []
    decides: list[float] = []
    errors: list[str] = []

    def post(path: str, body: dict[str, Any]) -> tuple[int, float, bytes]:
        start = time.perf_counter()
        status, data = conn.post(path, json.dumps(body).encode())
        return status, (time.perf_counter() - start) * 1000, data

    gate.wait()
    while True:
        with counter.get_lock():
            index = counter.value
            counter.value += 1
        if index >= len(case_ids):
            break
        case_id = case_ids[index]
        status, ms, data = post(f"/api/cases/{case_id}/claim", {})
        claims.append(ms)
        if status != 200:
            errors.append(f"claim {status} {data[:120]!r}")
            continue
        body = {"choice": "a", "rationale": "bench", "request_id": f"{session[:8]}-{case_id}"}
        status, ms, data = post(f"/api/cases/{case_id}/decide", body)
        decides.append(ms)
        if status != 200:
            errors.append(f"decide {status} {data[:120]!r}")
    conn.close()
    results.put((claims, decides, errors))


def process_tree_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a process and its children (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
        return sum(sum(p.cpu_times()[:2]) for p in procs)
    except psutil.Error:
        return None


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def run_one(
    url: str,
    *,
    code: str,
    pythonpath: Path,
    workers: int,
    cases: int,
    reviewers: int,
) -> dict[str, Any]:
    """One measured run against a fresh database."""
    case_ids, tokens = prepare(url, cases, reviewers)
    port = free_port()
    cmd = [sys.executable, "-c", LAUNCH, "queue", "--queue", url, "serve", "--port", str(port)]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    # ``python -c`` puts the working directory first on sys.path: start the server from a
    # folder without an ``oversight`` package, so PYTHONPATH decides which code serves.
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=pythonpath.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the server and its workers form one process group
    )
    ctx = mp.get_context("fork")
    try:
        wait_ready(port, proc)
        served_by = subprocess.run(
            [sys.executable, "-c", "import oversight; print(oversight.__file__)"],
            env=env,
            cwd=pythonpath.parent,
            capture_output=True,
            text=True,
        ).stdout.strip()
        sessions = [login(port, t) for t in tokens]
        counter = ctx.Value("i", 0)
        gate = ctx.Barrier(reviewers + 1)
        results = ctx.SimpleQueue()
        procs = [
            ctx.Process(target=reviewer, args=(port, s, case_ids, counter, gate, results))
            for s in sessions
        ]
        for p in procs:
            p.start()
        load_before = os.getloadavg()
        server_cpu0 = process_tree_cpu(proc.pid)
        client_cpu0 = sum(os.times()[2:4])
        gate.wait()
        t0 = time.perf_counter()
        collected = [results.get() for _ in procs]
        wall = time.perf_counter() - t0
        server_cpu1 = process_tree_cpu(proc.pid)
        for p in procs:
            p.join()
        client_cpu = sum(os.times()[2:4]) - client_cpu0
        load_after = os.getloadavg()
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(30 + 10 * workers)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # any worker left behind
        proc.wait(30)
    claims = [ms for c, _, _ in collected for ms in c]
    decides = [ms for _, d, _ in collected for ms in d]
    errors = [e for _, _, errs in collected for e in errs]
    with HumanQueue(url) as hq:
        decided = hq.counts().decided
        with hq.store.read() as conn:
            count = sa.select(sa.func.count()).select_from(hq.store.tables["decisions"])
            decision_rows = int(conn.execute(count).scalar_one())
    server_cpu = None if server_cpu0 is None or server_cpu1 is None else server_cpu1 - server_cpu0
    return {
        "code": code,
        "served_from": served_by,
        "workers": workers,
        "decided": decided,
        "decision_rows": decision_rows,
        "exactly_once": decided == cases and decision_rows == cases,
        "errors": len(errors),
        "error_examples": errors[:3],
        "wall_s": round(wall, 3),
        "decisions_per_s": round(decided / wall, 1),
        "claim_ms_p50": pct(claims, 50),
        "claim_ms_p99": pct(claims, 99),
        "decide_ms_p50": pct(decides, 50),
        "decide_ms_p99": pct(decides, 99),
        "server_cpu_ms_per_decision": (
            None if server_cpu is None else round(1000 * server_cpu / max(decided, 1), 3)
        ),
        "reviewers_cpu_ms_per_decision": round(1000 * client_cpu / max(decided, 1), 3),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviewers", type=int, default=16)
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4", help="server worker counts to measure")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--baseline-ref", default="main", help="git ref of the baseline server")
    parser.add_argument("--baseline-cases", type=int, default=None,
                        help="cases for the (slower) baseline runs; default --cases")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w]
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]

    report: dict[str, Any] = {
        "benchmark": "queue_http",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "reviewers": args.reviewers,
        "reviewer_processes": True,
        "cases": args.cases,
        "goal": GOAL,
        "server": "oversight queue serve (uvicorn), --workers N processes",
        "store": {
            "sqlite": "SQLite file, WAL, synchronous=NORMAL",
            "postgres": "PostgreSQL, fresh schema",
        },
        "databases": {},
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        base = baseline_tree(args.baseline_ref, tmp / "baseline")
        if base is None:
            report["baseline"] = f"left out: git archive {args.baseline_ref} failed"
        else:
            commit = subprocess.run(
                ["git", "-C", str(REPO), "rev-parse", "--short", args.baseline_ref],
                capture_output=True,
                text=True,
            ).stdout.strip()
            report["baseline"] = f"{args.baseline_ref} ({commit}), 1 worker"
        head = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        report["code"] = f"this tree (HEAD {head or 'unknown'})"
        for kind in databases:
            if kind == "postgres":
                why = postgres_reachable(args.postgres_url)
                if why is not None:
                    report["databases"][kind] = {"skipped": why}
                    continue
            runs: list[dict[str, Any]] = []
            plan: list[tuple[str, Path, int, int]] = []
            if base is not None:
                plan.append(("baseline", base, 1, args.baseline_cases or args.cases))
            plan += [("this tree", REPO, w, args.cases) for w in workers]
            for code, path, n_workers, n_cases in plan:
                with database(kind, tmp, args.postgres_url) as url:
                    result = run_one(
                        url,
                        code=code,
                        pythonpath=path,
                        workers=n_workers,
                        cases=n_cases,
                        reviewers=args.reviewers,
                    )
                result["cases"] = n_cases
                runs.append(result)
                print(json.dumps({"database": kind, **result}), file=sys.stderr)
            mine = [r for r in runs if r["code"] == "this tree"]
            best = max(mine, key=lambda r: r["decisions_per_s"]) if mine else None
            summary: dict[str, Any] = {"runs": runs}
            if best is not None:
                summary["best"] = {
                    "workers": best["workers"],
                    "decisions_per_s": best["decisions_per_s"],
                    "claim_ms_p99": best["claim_ms_p99"],
                    "meets_goal": best["decisions_per_s"] >= GOAL["decisions_per_s"]
                    and (best["claim_ms_p99"] or 1e9) < GOAL["claim_ms_p99"],
                }
                baseline = next((r for r in runs if r["code"] == "baseline"), None)
                if baseline is not None and baseline["decisions_per_s"]:
                    summary["best"]["speedup_vs_baseline"] = round(
                        best["decisions_per_s"] / baseline["decisions_per_s"], 2
                    )
            report["databases"][kind] = summary
    report["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(report, indent=1)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
