"""The review web page and JSON API over a :class:`~oversight.escalation.HumanQueue`.

``create_app(queue, accounts)`` returns a FastAPI app; ``oversight queue serve`` runs it on
uvicorn. Pages are server-rendered Jinja2 (autoescaped) with htmx (vendored, no CDN) for boosted
navigation and a self-refreshing case list. Security model:

- nothing but ``/login`` and ``/static`` answers without a session (pages redirect to the login
  page, the API answers 401);
- a session is an HttpOnly, SameSite=Strict cookie (pages) or ``Authorization: Bearer`` (API,
  from ``POST /api/login``); every state-changing form carries the session's CSRF token, and
  cookie-authenticated API calls must send it as ``X-CSRF-Token``;
- a strict Content-Security-Policy (no inline script or style) on every response;
- reviewers do not see other reviewers' decisions on a case until they decided it themselves
  or the case is settled (independent judgements make agreement meaningful); only admins break
  ties or withdraw cases.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, FastAPI, Form, HTTPException, Query, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..errors import CaseNotFound, EscalationError, LeaseError, QueueStoreError
from ..escalation import Case, Decision, DecisionRecord, HumanQueue, Lease, final_decision
from ..escalation.accounts import ReviewerAccounts, Session, check_csrf
from ..escalation.agreement import case_agreement, queue_agreement
from ..escalation.audits import audit_report
from ..escalation.votes import StakeholderVotes
from .explain import add_explain_routes
from .graph import conflict_view, payload, resolution_svg
from .hot_routes import HotRoutes
from .schema import (
    SECURITY,
    ApiError,
    CaseList,
    CaseSummary,
    CaseView,
    ClaimRequest,
    DecideRequest,
    LeaseReply,
    LoginReply,
    LoginRequest,
    ReleaseReply,
    StatusFilter,
    errors,
    finish_openapi,
)
from .votes import add_vote_routes

HERE = Path(__file__).parent
COOKIE = "oversight_session"
LOGIN_COOKIE = "oversight_login"
STATUSES = ("open", "tie", "decided", "withdrawn")
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}

MAX_OFFSET = 2**31 - 1
"""Largest page offset (a larger one overflows the database's integer)."""

PriorityEdges = Callable[[Case], Iterable[tuple[str, str]]]
T = TypeVar("T")

API_THREADS = 8
"""Worker threads per server process for API requests (authentication plus the queue operation
run together in one of them). SQLite admits one writer at a time, so more threads only queue
up on its lock and on the GIL."""


class SecurityHeaders:
    """ASGI middleware: the security headers on every response, ``Cache-Control: no-store`` on
    all but static files. (A plain ASGI wrapper: Starlette's ``BaseHTTPMiddleware`` runs each
    request through extra tasks and memory streams, a third of the server's time per request.)
    """

    _HEADERS = tuple((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items())
    _NO_STORE = (b"cache-control", b"no-store")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = list(self._HEADERS)
        if not scope["path"].startswith("/static/"):
            extra.append(self._NO_STORE)
        names = {name for name, _ in extra}

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [h for h in message.get("headers", ()) if h[0].lower() not in names]
                message["headers"] = kept + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _age(ts: datetime, now: float) -> str:
    seconds = max(0, int(now - ts.timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _can_see_decisions(case: Case, session: Session) -> bool:
    if session.reviewer.admin or case.status in ("decided", "withdrawn"):
        return True
    return any(d.reviewer == session.reviewer.name for d in case.decisions)


def _visible_decisions(case: Case, session: Session) -> list[DecisionRecord]:
    if _can_see_decisions(case, session):
        return list(case.decisions)
    return [d for d in case.decisions if d.reviewer == session.reviewer.name]


def _summary(case: Case, session: Session) -> dict[str, Any]:
    return {
        "id": case.id,
        "run": case.run,
        "episode": case.episode,
        "status": case.status,
        "priority": case.priority,
        "created_at": case.created_at.isoformat(),
        "triggers": list(case.triggers),
        "principles": list(case.principles),
        "reviewers_required": case.reviewers_required,
        "decisions": len(case.decisions),
        "open_slots": case.open_slots,
        "leases": [_lease_json(lease) for lease in case.leases],
        "mine": any(lease.reviewer == session.reviewer.name for lease in case.leases),
    }


def _lease_json(lease: Lease) -> dict[str, Any]:
    return {
        "reviewer": lease.reviewer,
        "expires_at": lease.expires_at.isoformat(),
        "claimed_at": lease.claimed_at.isoformat(),
    }


def _accounts(request: Request) -> ReviewerAccounts:
    accounts: ReviewerAccounts = request.app.state.accounts
    return accounts


def page_session(request: Request) -> Session:
    """The page's session from its cookie; otherwise a redirect to the login page."""
    session = _accounts(request).authenticate(request.cookies.get(COOKIE))
    if session is None:
        raise HTTPException(303, headers={"Location": "/login"})
    return session


@dataclass(frozen=True)
class ApiCredentials:
    """What an API request presented: a bearer session, or the cookie plus its CSRF header.
    Read from the headers without touching the database; :func:`api_session` checks them."""

    bearer: str | None
    cookie: str | None
    csrf: str | None
    changes_state: bool


async def api_credentials(request: Request) -> ApiCredentials:
    """The API caller's credentials (``Authorization: Bearer <session>``, or the session
    cookie with an ``X-CSRF-Token`` header); 401 at once when there are none. (``async``
    although it awaits nothing: FastAPI runs a plain ``def`` dependency in a worker thread,
    a second thread hop per request for reading two headers.)"""
    headers = request.headers
    authorization = headers.get("authorization")
    bearer = None
    if authorization and authorization.lower().startswith("bearer "):
        bearer = authorization[7:].strip()
    cookie = None if bearer is not None else request.cookies.get(COOKIE)
    if not bearer and not cookie:
        raise HTTPException(401, "log in: POST /api/login with your token")
    changes_state = request.method not in ("GET", "HEAD")
    return ApiCredentials(bearer, cookie, headers.get("x-csrf-token"), changes_state)


def api_session(accounts: ReviewerAccounts, credentials: ApiCredentials) -> Session:
    """The session behind ``credentials``: ``Authorization: Bearer``, or the cookie plus
    ``X-CSRF-Token`` on requests that change state; otherwise 401 / 403. Reads the database:
    call it in a worker thread, on every request."""
    if credentials.bearer is not None:
        session = accounts.authenticate(credentials.bearer)
    else:
        session = accounts.authenticate(credentials.cookie)
        if (
            session is not None
            and credentials.changes_state
            and not check_csrf(session, credentials.csrf)
        ):
            raise HTTPException(403, "missing or wrong X-CSRF-Token header")
    if session is None:
        raise HTTPException(401, "log in: POST /api/login with your token")
    return session


PageSession = Annotated[Session, Depends(page_session)]
Credentials = Annotated[ApiCredentials, Depends(api_credentials)]
"""Read from the headers before the body is parsed, so a request without any credentials gets
401 whatever its body; the session itself is checked in the worker thread (``api_call``)."""


def training_rows(runs_dir: Path, case: Case) -> list[dict[str, Any]]:
    """Rows of ``runs/<run>/sft.jsonl`` and ``dpo.jsonl`` whose provenance names this case."""
    found: list[dict[str, Any]] = []
    for name in ("sft.jsonl", "dpo.jsonl"):
        path = runs_dir / case.run / name
        if not path.is_file():
            continue
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh, start=1):
                if case.id not in line:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if (row.get("provenance") or {}).get("case_id") == case.id:
                    found.append({"file": name, "line": line_no, "row": row})
    return found


def create_app(
    queue: HumanQueue,
    accounts: ReviewerAccounts,
    *,
    runs_dir: str | Path = "runs",
    priority_edges: PriorityEdges | None = None,
    secure_cookies: bool = False,
    page_size: int = 50,
    votes: StakeholderVotes | None = None,
) -> FastAPI:
    """The review app. ``priority_edges(case)`` gives the constitution's ``(winner, loser)``
    edges for a case's context (drawn in the case graph); ``secure_cookies`` adds ``Secure``
    to the cookies (serve behind HTTPS); ``votes`` holds the stakeholders' proposals and votes
    (by default in the queue's database, see :mod:`oversight.web.votes`)."""
    runs = Path(runs_dir)
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False, default=str)
    app = FastAPI(
        title="oversight review",
        summary="Adjudicate escalated oversight cases.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.queue = queue
    app.state.accounts = accounts
    app.state.started = datetime.now(UTC)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    api_threads = anyio.CapacityLimiter(API_THREADS)

    def page(
        name: str, session: Session | None, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        html = env.get_template(name).render(session=session, now=time.time(), **context)
        return HTMLResponse(html, status_code=status_code)

    # -- authentication ---------------------------------------------------------------------

    def require_csrf(session: Session, token: str) -> None:
        if not check_csrf(session, token):
            raise HTTPException(403, "the form's CSRF token is missing or stale; reload the page")

    def set_session_cookie(response: Response, session: Session) -> None:
        response.set_cookie(
            COOKIE,
            session.secret,
            max_age=int(session.expires_at - time.time()),
            httponly=True,
            samesite="strict",
            secure=secure_cookies,
            path="/",
        )

    @app.get("/login", include_in_schema=False)
    def login_form(request: Request) -> HTMLResponse:
        nonce = secrets.token_urlsafe(24)
        response = page("login.html", None, csrf=nonce, error=None)
        response.set_cookie(
            LOGIN_COOKIE, nonce, httponly=True, samesite="strict", secure=secure_cookies
        )
        return response

    @app.post("/login", include_in_schema=False)
    def login(
        request: Request, token: Annotated[str, Form()], csrf: Annotated[str, Form()] = ""
    ) -> Response:
        expected = request.cookies.get(LOGIN_COOKIE) or ""
        if not expected or not secrets.compare_digest(expected, csrf):
            raise HTTPException(403, "the login form is stale; reload the login page")
        try:
            session = accounts.login(token)
        except EscalationError as exc:
            response: Response = page("login.html", None, 403, csrf=expected, error=str(exc))
            return response
        response = RedirectResponse("/", status_code=303)
        set_session_cookie(response, session)
        response.delete_cookie(LOGIN_COOKIE)
        return response

    @app.post("/logout", include_in_schema=False)
    def logout(session: PageSession, csrf: Annotated[str, Form()] = "") -> Response:
        require_csrf(session, csrf)
        accounts.logout(session.secret)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    # -- pages ------------------------------------------------------------------------------

    def list_context(
        session: Session,
        status: str,
        run: str | None,
        principle: str | None,
        trigger: str | None,
        mine: bool,
        offset: int,
    ) -> dict[str, Any]:
        if status not in (*STATUSES, "all"):
            raise HTTPException(400, f"unknown status {status!r}; use one of {STATUSES} or all")
        filters = {
            "status": None if status == "all" else status,
            "run": run or None,
            "principle": principle or None,
            "trigger": trigger or None,
        }
        if mine:
            cases = queue.list_cases(
                claimed_by=session.reviewer.name, limit=page_size, offset=offset
            )
            total = len(cases)
        else:
            cases = queue.list_cases(**filters, limit=page_size, offset=offset)
            total = queue.count_cases(**filters)
        return {
            "cases": cases,
            "total": total,
            "counts": queue.counts(run=run or None),
            "filters": {**filters, "status": status, "mine": mine},
            "offset": offset,
            "page_size": page_size,
            "statuses": (*STATUSES, "all"),
            "age": _age,
        }

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def case_list(
        request: Request,
        session: PageSession,
        status: str = "open",
        run: str = "",
        principle: str = "",
        trigger: str = "",
        mine: bool = False,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
        fragment: bool = False,
    ) -> HTMLResponse:
        context = list_context(session, status, run, principle, trigger, mine, offset)
        if fragment:
            return page("_cases.html", session, **context)
        return page("list.html", session, **context)

    def case_context(case: Case, session: Session, error: str | None = None) -> dict[str, Any]:
        details = case.details
        edges = list(priority_edges(case)) if priority_edges is not None else []
        decided = final_decision(case)
        return {
            "case": case,
            "error": error,
            "view": conflict_view(case),
            "svg": resolution_svg(case, edges),
            "critiques": [payload(x) for x in _as_list(details.get("critiques"))],
            "safety": [payload(x) for x in _as_list(details.get("safety"))],
            "verifications": [payload(x) for x in _as_list(details.get("verifications"))],
            "uncertainty": [payload(x) for x in _as_list(details.get("uncertainty"))],
            "other_details": {
                k: v
                for k, v in details.items()
                if k
                not in (
                    "critiques",
                    "safety",
                    "conflict",
                    "resolution",
                    "verifications",
                    "uncertainty",
                )
            },
            "decisions": _visible_decisions(case, session),
            "hidden_decisions": len(case.decisions) - len(_visible_decisions(case, session)),
            "my_lease": next(
                (lease for lease in case.leases if lease.reviewer == session.reviewer.name), None
            ),
            "decided_by_me": any(d.reviewer == session.reviewer.name for d in case.decisions),
            "final": decided,
            "agreement": case_agreement(case) if decided is not None else None,
            "request_id": secrets.token_urlsafe(16),
            "age": _age,
        }

    def get_case(case_id: str) -> Case:
        try:
            return queue.get(case_id)
        except CaseNotFound as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.get("/cases/{case_id}", response_class=HTMLResponse, include_in_schema=False)
    def case_page(case_id: str, session: PageSession) -> HTMLResponse:
        case = get_case(case_id)
        return page("case.html", session, **case_context(case, session))

    def act(case_id: str, session: Session, action: Callable[[], Any], back: str) -> Response:
        try:
            action()
        except (LeaseError, EscalationError, ValidationError) as exc:
            if isinstance(exc, CaseNotFound):
                raise HTTPException(404, str(exc)) from exc
            if isinstance(exc, QueueStoreError):
                raise HTTPException(503, str(exc)) from exc
            message = str(exc)
            if isinstance(exc, ValidationError):
                message = "; ".join(e["msg"] for e in exc.errors())
            case = get_case(case_id)
            return page("case.html", session, 409, **case_context(case, session, message))
        return RedirectResponse(back, status_code=303)

    @app.post("/cases/{case_id}/claim", include_in_schema=False)
    def claim_form(
        case_id: str, session: PageSession, csrf: Annotated[str, Form()] = ""
    ) -> Response:
        require_csrf(session, csrf)
        return act(
            case_id,
            session,
            lambda: queue.claim(case_id, session.reviewer.name),
            f"/cases/{case_id}",
        )

    @app.post("/cases/{case_id}/release", include_in_schema=False)
    def release_form(
        case_id: str, session: PageSession, csrf: Annotated[str, Form()] = ""
    ) -> Response:
        require_csrf(session, csrf)
        return act(case_id, session, lambda: queue.release(case_id, session.reviewer.name), "/")

    @app.post("/cases/{case_id}/decide", include_in_schema=False)
    def decide_form(
        case_id: str,
        session: PageSession,
        csrf: Annotated[str, Form()] = "",
        choice: Annotated[str, Form()] = "",
        edited_text: Annotated[str, Form()] = "",
        rationale: Annotated[str, Form()] = "",
        tags: Annotated[list[str] | None, Form()] = None,
        request_id: Annotated[str, Form()] = "",
        tie_break: Annotated[bool, Form()] = False,
    ) -> Response:
        require_csrf(session, csrf)

        def decide() -> None:
            edit = choice == "edit"
            decision = Decision(
                choice=None if edit or not choice else choice,
                edited_text=edited_text if edit else None,
                rationale=rationale,
                principle_tags=tuple(tags or ()),
            )
            apply_decision(case_id, session, decision, request_id or None, tie_break)

        return act(case_id, session, decide, "/")

    @app.post("/cases/{case_id}/withdraw", include_in_schema=False)
    def withdraw_form(
        case_id: str,
        session: PageSession,
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form()] = "",
    ) -> Response:
        require_csrf(session, csrf)
        if not session.reviewer.admin:
            raise HTTPException(403, "only an admin may withdraw a case")
        reason = reason.strip() or f"withdrawn by {session.reviewer.name}"
        return act(case_id, session, lambda: queue.withdraw(case_id, reason), "/")

    @app.get("/cases/{case_id}/rows", response_class=HTMLResponse, include_in_schema=False)
    def rows_page(case_id: str, session: PageSession) -> HTMLResponse:
        case = get_case(case_id)
        return page("rows.html", session, case=case, rows=training_rows(runs, case))

    # -- preference chains (oversight/web/explain.py) ------------------------------------------
    add_explain_routes(
        app,
        page=page,
        session_dependency=PageSession,
        get_case=get_case,
        queue=queue,
        runs=runs,
        can_see_decisions=_can_see_decisions,
        visible_decisions=_visible_decisions,
    )

    @app.get("/agreement", response_class=HTMLResponse, include_in_schema=False)
    def agreement_page(session: PageSession, run: str = "") -> HTMLResponse:
        cases = queue.list_cases(status="decided", run=run or None, limit=100_000)
        return page("agreement.html", session, report=queue_agreement(cases), run=run)

    @app.get("/accuracy", response_class=HTMLResponse, include_in_schema=False)
    def accuracy_page(session: PageSession, run: str = "") -> HTMLResponse:
        cases = queue.list_cases(status="decided", run=run or None, limit=100_000)
        return page("accuracy.html", session, report=audit_report(cases), run=run)

    def apply_decision(
        case_id: str, session: Session, decision: Decision, request_id: str | None, tie: bool
    ) -> DecisionRecord:
        if tie and not session.reviewer.admin:
            raise LeaseError(f"only an admin may break a tie; {session.reviewer.name} is not one")
        return queue.resolve(
            case_id, session.reviewer.name, decision, request_id=request_id, tie_break=tie
        )

    # -- JSON API ---------------------------------------------------------------------------

    def api_errors(action: Callable[[], T]) -> T:
        try:
            return action()
        except CaseNotFound as exc:
            raise HTTPException(404, str(exc)) from exc
        except QueueStoreError as exc:
            raise HTTPException(503, str(exc)) from exc
        except LeaseError as exc:
            raise HTTPException(409, str(exc)) from exc
        except EscalationError as exc:  # e.g. a candidate the case does not have
            raise HTTPException(409, str(exc)) from exc
        except ValidationError as exc:
            raise HTTPException(422, "; ".join(e["msg"] for e in exc.errors())) from exc

    async def api_call(credentials: ApiCredentials, action: Callable[[Session], T]) -> T:
        """Authenticate, then run ``action(session)``: both in one worker thread, so a request
        crosses from the event loop to a thread once."""

        def work() -> T:
            session = api_errors(lambda: api_session(accounts, credentials))
            return api_errors(lambda: action(session))

        return await anyio.to_thread.run_sync(work, limiter=api_threads)

    # Claim and decide, shared by their routes and by HotRoutes (see .hot_routes).

    async def claim_case(
        case_id: str, credentials: ApiCredentials, body: ClaimRequest | None
    ) -> LeaseReply:
        seconds = body.lease_seconds if body else None

        def claim(session: Session) -> Lease:
            return queue.claim(case_id, session.reviewer.name, seconds)

        lease = await api_call(credentials, claim)
        return LeaseReply(
            case_id=case_id,
            reviewer=lease.reviewer,
            slot=lease.slot,
            claimed_at=lease.claimed_at,
            expires_at=lease.expires_at,
        )

    async def decide_case(
        case_id: str, credentials: ApiCredentials, body: DecideRequest
    ) -> DecisionRecord:
        fields = body.root

        def decide(session: Session) -> DecisionRecord:
            decision = Decision(
                choice=body.choice,
                edited_text=body.edited_text,
                rationale=fields.rationale,
                principle_tags=fields.principle_tags,
            )
            return apply_decision(case_id, session, decision, fields.request_id, fields.tie_break)

        return await api_call(credentials, decide)

    def bearer(session: str) -> ApiCredentials:
        return ApiCredentials(bearer=session, cookie=None, csrf=None, changes_state=True)

    app.add_middleware(
        HotRoutes,
        claim=lambda case_id, session, body: claim_case(case_id, bearer(session), body),
        decide=lambda case_id, session, body: decide_case(case_id, bearer(session), body),
        error_reply=api_error_reply,
    )
    app.add_middleware(SecurityHeaders)  # outermost: on the hot routes' replies too

    api_tags: list[str | Enum] = ["api"]
    secured: dict[str, Any] = {"security": SECURITY}  # every route but login (see .schema)

    @app.post("/api/login", tags=["api"], responses=errors(400, 401, 422, 503))
    def api_login(body: LoginRequest) -> LoginReply:
        """Exchange a one-time token for a session (send it as ``Authorization: Bearer``)."""
        try:
            session = accounts.login(body.token)
        except QueueStoreError as exc:
            raise HTTPException(503, str(exc)) from exc
        except EscalationError as exc:  # a token that is not valid (or spent)
            raise HTTPException(401, str(exc)) from exc
        return LoginReply(
            reviewer=session.reviewer.name,
            admin=session.reviewer.admin,
            stakeholder=session.reviewer.stakeholder,
            session=session.secret,
            csrf=session.csrf,
        )

    @app.get("/api/cases", responses=errors(401, 422, 503), tags=api_tags, openapi_extra=secured)
    async def api_list(
        credentials: Credentials,
        status: StatusFilter = "open",
        run: str | None = None,
        principle: str | None = None,
        trigger: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> CaseList:
        """Cases, highest priority first, then oldest; ``status=all`` for every status."""
        filters: dict[str, Any] = {
            "status": None if status == "all" else status,
            "run": run,
            "principle": principle,
            "trigger": trigger,
        }

        def listing(session: Session) -> CaseList:
            cases = queue.list_cases(**filters, limit=limit, offset=offset)
            return CaseList(
                cases=[CaseSummary(**_summary(c, session)) for c in cases],
                total=queue.count_cases(**filters),
            )

        return await api_call(credentials, listing)

    @app.get(
        "/api/cases/{case_id}",
        responses=errors(401, 404, 503),
        tags=api_tags,
        openapi_extra=secured,
    )
    async def api_show(case_id: str, credentials: Credentials) -> CaseView:
        """One case with prompt, candidates and the agents' internal reasoning (``details``).

        Other reviewers' decisions are left out until you decided or the case is settled."""

        def show(session: Session) -> CaseView:
            case = queue.get(case_id)
            return CaseView(
                **{
                    **dict(case),
                    "decisions": tuple(_visible_decisions(case, session)),
                    "final_decision": final_decision(case),
                }
            )

        return await api_call(credentials, show)

    @app.post(
        "/api/cases/{case_id}/claim",
        responses=errors(400, 401, 403, 404, 409, 422, 503),
        tags=api_tags,
        openapi_extra=secured,
    )
    async def api_claim(
        case_id: str, credentials: Credentials, body: ClaimRequest | None = None
    ) -> LeaseReply:
        """Claim the case (a lease); claiming again renews your lease."""
        return await claim_case(case_id, credentials, body)

    @app.post(
        "/api/cases/{case_id}/release",
        responses=errors(401, 403, 404, 503),
        tags=api_tags,
        openapi_extra=secured,
    )
    async def api_release(case_id: str, credentials: Credentials) -> ReleaseReply:
        """Give your claim back."""

        def release(session: Session) -> bool:
            return queue.release(case_id, session.reviewer.name)

        return ReleaseReply(released=await api_call(credentials, release))

    @app.post(
        "/api/cases/{case_id}/decide",
        response_model=DecisionRecord,
        responses=errors(400, 401, 403, 404, 409, 422, 503),
        tags=api_tags,
        openapi_extra=secured,
    )
    async def api_decide(case_id: str, body: DecideRequest, credentials: Credentials) -> Response:
        """Decide a case you hold a claim on; idempotent per ``request_id``.

        The body is one of two shapes: ``choice`` (a candidate id) or ``edited_text`` (your
        own answer), never both."""
        record = await decide_case(case_id, credentials, body)
        return Response(record.model_dump_json(), media_type="application/json")

    add_vote_routes(
        app,
        votes or StakeholderVotes(queue.store, table_prefix=_prefix(accounts), accounts=accounts),
        page=page,
        page_session=PageSession,
        require_csrf=require_csrf,
        credentials=Credentials,
        api_call=api_call,
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith("/api/"):
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        return JSONResponse(ApiError(error=problems).model_dump(), 422)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = finish_openapi(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 303:
            return Response(status_code=303, headers=headers)
        if request.url.path.startswith("/api/"):
            return api_error_reply(exc)
        html = env.get_template("error.html").render(
            session=None, status=exc.status_code, message=exc.detail, now=time.time()
        )
        return HTMLResponse(html, exc.status_code, headers=headers)

    return app


def api_error_reply(exc: StarletteHTTPException) -> Response:
    """The JSON API's reply to an error: ``{"error": detail}`` with its status and headers."""
    return JSONResponse({"error": exc.detail}, exc.status_code, headers=dict(exc.headers or {}))


def _prefix(accounts: ReviewerAccounts) -> str:
    """The table prefix the accounts were made with (``queue_`` by default)."""
    return str(accounts.reviewers.name).removesuffix("reviewers")


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    return [] if value is None else [value]


__all__ = ["CSP", "ClaimRequest", "DecideRequest", "LoginReply", "LoginRequest", "create_app"]
