"""Review server throughput: concurrent reviewers claim and decide through the HTTP API.

Starts ``oversight queue serve`` (uvicorn, a child process) on a fresh SQLite queue, submits
``--cases`` cases, logs ``--reviewers`` reviewers in through ``POST /api/login`` and lets each
one, in its own thread with a keep-alive connection, take the next case, ``POST .../claim`` and
``POST .../decide`` (with a request id) until the cases run out. Prints one JSON object:
decisions/s (wall clock, all reviewers together) and p50/p99 latency of claim and decide in ms.

    python benchmarks/queue_http.py [--reviewers 16] [--cases 1200]

(Not ``benchmarks/queue.py``: a script of that name shadows the standard library's ``queue``
module for every script in this folder, and networkx imports ``queue``.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import queue as queue_mod
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from oversight.escalation import CaseSubmission, HumanQueue
from oversight.escalation.accounts import ReviewerAccounts

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


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with status {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/login")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def call(
    conn: http.client.HTTPConnection, path: str, body: dict[str, object], auth: str
) -> tuple[int, float]:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {auth}"}
    start = time.perf_counter()
    conn.request("POST", path, body=data, headers=headers)
    reply = conn.getresponse()
    reply.read()
    return reply.status, (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reviewers", type=int, default=16)
    parser.add_argument("--cases", type=int, default=1200)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'queue.db'}"
        with HumanQueue(url) as hq:
            accounts = ReviewerAccounts(hq.store)
            tokens = [accounts.add_reviewer(f"r{i}") for i in range(args.reviewers)]
            todo: queue_mod.SimpleQueue[str] = queue_mod.SimpleQueue()
            for i in range(args.cases):
                todo.put(
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
                )
        port = free_port()
        cmd = [sys.executable, "-c", LAUNCH, "queue", "--queue", url, "serve", "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, proc)
            sessions = []
            for token in tokens:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/api/login", body=json.dumps({"token": token}),
                             headers={"Content-Type": "application/json"})  # fmt: skip
                sessions.append(json.loads(conn.getresponse().read())["session"])
                conn.close()
            claims: list[float] = []
            decides: list[float] = []
            errors: list[int] = []
            lock = threading.Lock()
            start_gate = threading.Barrier(args.reviewers + 1)

            def reviewer(auth: str) -> None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                mine_c: list[float] = []
                mine_d: list[float] = []
                bad: list[int] = []
                start_gate.wait()
                while True:
                    try:
                        case_id = todo.get_nowait()
                    except queue_mod.Empty:
                        break
                    status, ms = call(conn, f"/api/cases/{case_id}/claim", {}, auth)
                    mine_c.append(ms)
                    if status != 200:
                        bad.append(status)
                        continue
                    body = {
                        "choice": "a",
                        "rationale": "bench",
                        "request_id": f"{auth[:8]}-{case_id}",
                    }
                    status, ms = call(conn, f"/api/cases/{case_id}/decide", body, auth)
                    mine_d.append(ms)
                    if status != 200:
                        bad.append(status)
                conn.close()
                with lock:
                    claims.extend(mine_c)
                    decides.extend(mine_d)
                    errors.extend(bad)

            threads = [threading.Thread(target=reviewer, args=(s,)) for s in sessions]
            for t in threads:
                t.start()
            cpu0 = os.times()
            start_gate.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
            client_cpu = sum(os.times()[:2]) - sum(cpu0[:2])
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        with HumanQueue(url) as hq:
            decided = hq.counts().decided

    def pct(values: list[float], q: float) -> float:
        return round(float(np.percentile(values, q)), 2) if values else float("nan")

    print(
        json.dumps(
            {
                "benchmark": "queue_http",
                "reviewers": args.reviewers,
                "cases": args.cases,
                "decided": decided,
                "errors": len(errors),
                "wall_s": round(wall, 3),
                "decisions_per_s": round(decided / wall, 1),
                "claim_ms_p50": pct(claims, 50),
                "claim_ms_p99": pct(claims, 99),
                "decide_ms_p50": pct(decides, 50),
                "decide_ms_p99": pct(decides, 99),
                "client_cpu_s": round(client_cpu, 2),
                "cpus": os.cpu_count(),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "python": platform.python_version(),
                "store": "sqlite (WAL, synchronous=NORMAL)",
                "server": "uvicorn, 1 process",
            }
        )
    )


if __name__ == "__main__":
    main()
