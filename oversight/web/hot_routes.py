"""Claim and decide, the two requests of every review, answered without FastAPI's per-request
machinery.

A review is ``POST /api/cases/{id}/claim`` then ``POST /api/cases/{id}/decide``. Through FastAPI
each one walks the route table, builds a request object, solves dependencies, validates the
body through a field wrapper and serializes the reply through another: on the review server
that was more CPU per request than the database transaction itself. :class:`HotRoutes` is an
ASGI middleware in front of the router that answers the ordinary form of these two requests
itself and hands everything else to the app unchanged:

- it answers only ``POST`` to exactly ``/api/cases/{id}/claim`` or ``.../decide`` with one
  ``Authorization: Bearer`` header and ``Content-Type: application/json``, and a body that is
  empty (claim only) or a JSON object that the route's own model (:class:`ClaimRequest`,
  :class:`DecideRequest`) accepts, parsed as FastAPI parses it (``json.loads``, then the model
  in Python mode);
- anything else (no or other credentials, cookie sessions with their CSRF header, another
  content type, a body the model refuses, a large body) goes to the FastAPI route with the body
  replayed, so every error reply and the OpenAPI contract stay FastAPI's;
- an answered request runs the same code as the route (``claim`` / ``decide`` of
  :func:`oversight.web.create_app`: the session is looked up and the queue operation runs in
  one worker thread, on every request) and its errors become the same ``{"error": ...}``
  replies. ``tests/test_web_server.py`` checks that both paths answer alike.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .schema import ClaimRequest, DecideRequest

_PATH = re.compile(r"/api/cases/([^/]+)/(claim|decide)")
_MAX_BODY = 64 * 1024
"""Larger bodies go to FastAPI (decisions are a few hundred bytes)."""
_WANTED = (b"authorization", b"content-type", b"cookie", b"x-csrf-token")

Claim = Callable[[str, str, ClaimRequest | None], Awaitable[BaseModel]]
"""``claim(case_id, bearer_session, body)``: the reply of the claim route."""
Decide = Callable[[str, str, DecideRequest], Awaitable[BaseModel]]
"""``decide(case_id, bearer_session, body)``: the reply of the decide route."""
ErrorReply = Callable[[HTTPException], Response]
"""The API's reply to an ``HTTPException`` (``{"error": detail}`` with its status)."""


class HotRoutes:
    """ASGI middleware: the common form of claim and decide answered directly (see the
    module docstring); every other request goes to ``app``."""

    def __init__(
        self, app: ASGIApp, *, claim: Claim, decide: Decide, error_reply: ErrorReply
    ) -> None:
        self.app = app
        self._claim = claim
        self._decide = decide
        self._error_reply = error_reply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            match = _PATH.fullmatch(scope["path"])
        bearer = _bearer(scope) if match is not None else None
        if match is None or bearer is None:
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = await _read_body(receive, received)
        parsed = None if body is None else _parse(match[2], body)
        if parsed is None:
            await self.app(scope, _replay(received, receive), send)
            return
        case_id, model = match[1], parsed[0]
        try:
            if isinstance(model, DecideRequest):
                reply = await self._decide(case_id, bearer, model)
            else:
                reply = await self._claim(case_id, bearer, model)
        except HTTPException as exc:
            await self._error_reply(exc)(scope, receive, send)
            return
        response = Response(reply.model_dump_json(), media_type="application/json")
        await response(scope, receive, send)


def _bearer(scope: Scope) -> str | None:
    """The bearer session when the request carries exactly the headers the hot path
    handles (one ``Authorization: Bearer``, one ``Content-Type: application/json``);
    otherwise None."""
    seen: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        name = name.lower()
        if name in _WANTED:
            if name in seen:
                return None  # a repeated header: let FastAPI read it its own way
            seen[name] = value
    authorization = seen.get(b"authorization", b"").decode("latin-1")
    if not authorization.lower().startswith("bearer "):
        return None
    content_type = seen.get(b"content-type", b"").decode("latin-1").strip().lower()
    if content_type != "application/json":
        return None
    return authorization[7:].strip() or None


async def _read_body(receive: Receive, received: list[Message]) -> bytes | None:
    """The whole body, keeping every message in ``received``; None when it is too large
    or the client went away (FastAPI then sees the same messages)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse(action: str, body: bytes) -> tuple[ClaimRequest | DecideRequest | None] | None:
    """The body as the route's model (in a 1-tuple: a claim's empty body is ``(None,)``), or
    None when FastAPI should answer (not JSON, not an object, refused by the model)."""
    if not body:
        return (None,) if action == "claim" else None
    try:
        data: Any = json.loads(body)
    except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
        return None
    if not isinstance(data, dict):
        return None
    try:
        if action == "claim":
            return (ClaimRequest.model_validate(data),)
        return (DecideRequest.model_validate(data),)
    except ValidationError:
        return None


def _replay(received: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


__all__ = ["HotRoutes"]
