"""The review API's contract: request and reply models and the OpenAPI details they cannot say.

Every JSON route of :func:`oversight.web.create_app` takes and returns these models, so the
schema at ``/openapi.json`` is what the server enforces:

- every error reply is :class:`ApiError` (``{"error": "..."}``), and each route lists the
  status codes it can answer with (:func:`errors`);
- case statuses are an enum (:data:`StatusFilter`);
- a decision is ``oneOf`` two shapes (:class:`ChooseCandidate`, :class:`EditAnswer`), each
  closed (``additionalProperties: false``), so "exactly one of ``choice`` / ``edited_text``"
  is in the schema;
- the API's two ways to authenticate are security schemes (:func:`finish_openapi`).

``tests/test_api_contract.py`` fuzzes a running server from this schema with schemathesis.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, RootModel

from ..escalation.models import Case as _Case
from ..escalation.models import CaseStatus, FinalDecision

StatusFilter: TypeAlias = Literal["open", "tie", "decided", "withdrawn", "all"]
"""The ``status`` filter of ``GET /api/cases``: a case status, or ``all``."""

BEARER = "bearer"
COOKIE_SCHEME = "session_cookie"
SECURITY: list[dict[str, list[str]]] = [{BEARER: []}, {COOKIE_SCHEME: []}]
"""Either scheme authenticates an API call (see :func:`finish_openapi`)."""


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApiError(_Body):
    """Every error reply of the JSON API."""

    error: str
    """What went wrong and how to fix it."""


ERROR_MEANINGS: dict[int, str] = {
    400: "The body is not JSON text.",
    401: "No session, an unknown or expired one, or (login) a token that is not valid.",
    403: "Cookie session without the right X-CSRF-Token header, or a role the action needs.",
    404: "No such case (or proposal).",
    409: "The case's state refuses it: no claim held, lease lost, case settled, tie-break by "
    "a non-admin, a candidate id the case does not have; a proposal that is closed.",
    422: "The request does not match this schema.",
    503: "The queue's database is locked or unreachable; retry.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entry of a route that may answer with these error codes."""
    return {code: {"model": ApiError, "description": ERROR_MEANINGS[code]} for code in codes}


# -- requests ---------------------------------------------------------------------------------


class LoginRequest(_Body):
    """Exchange a one-time token for an API session."""

    token: str
    """The token printed by ``oversight queue add-reviewer``."""


class ClaimRequest(_Body):
    """Claim (or renew) a case."""

    lease_seconds: float | None = Field(default=None, gt=0, le=7 * 86400)
    """Lease length in seconds (at most a week); the queue's default when absent."""


class _DecisionFields(_Body):
    rationale: str = ""
    """Why."""
    principle_tags: tuple[str, ...] = ()
    """Principles that decided it."""
    request_id: str | None = Field(default=None, min_length=1, max_length=200)
    """Idempotency key: a retried request with the same id applies once."""
    tie_break: bool = False
    """Settle a tied case (admins only)."""


class ChooseCandidate(_DecisionFields):
    """A decision that chooses one of the case's candidates."""

    choice: str = Field(min_length=1, max_length=200)
    """Candidate id chosen."""


class EditAnswer(_DecisionFields):
    """A decision that writes the answer instead of choosing a candidate."""

    edited_text: str = Field(min_length=1, pattern=r"\S")
    """The reviewer's answer (not blank)."""


def _one_of(schema: dict[str, Any]) -> None:
    # A body matches exactly one shape (both are closed), so ``oneOf`` is exact; pydantic
    # writes ``anyOf`` for a plain union.
    if "anyOf" in schema:
        schema["oneOf"] = schema.pop("anyOf")


class DecideRequest(RootModel[ChooseCandidate | EditAnswer]):
    """A decision: exactly one of ``choice`` (a candidate id) or ``edited_text``."""

    model_config = ConfigDict(frozen=True, json_schema_extra=_one_of)

    @property
    def choice(self) -> str | None:
        """The candidate chosen, or None for an edited answer."""
        return self.root.choice if isinstance(self.root, ChooseCandidate) else None

    @property
    def edited_text(self) -> str | None:
        """The edited answer, or None when a candidate was chosen."""
        return self.root.edited_text if isinstance(self.root, EditAnswer) else None


# -- replies ----------------------------------------------------------------------------------


class LoginReply(_Body):
    """An API session."""

    reviewer: str
    """Who is logged in."""
    admin: bool
    """Whether the reviewer may break ties and withdraw cases."""
    stakeholder: bool = False
    """Whether the reviewer may vote on proposed constitution changes."""
    session: str
    """Send as ``Authorization: Bearer <session>``."""
    csrf: str
    """Send as ``X-CSRF-Token`` when authenticating with the cookie instead."""


class LeaseReply(_Body):
    """A claim held on a case."""

    case_id: str
    """The case claimed."""
    reviewer: str
    """Who holds it."""
    slot: int
    """Which of the case's places the claim holds (0-based)."""
    claimed_at: datetime
    """When it was made or renewed (UTC)."""
    expires_at: datetime
    """When the case returns to the pool unless decided (UTC)."""


class ReleaseReply(_Body):
    """The answer to giving a claim back."""

    released: bool
    """False when you held no claim on the case."""


class LeaseSummary(_Body):
    """A claim, as the case list shows it."""

    reviewer: str
    """Who holds it."""
    claimed_at: datetime
    """When (UTC)."""
    expires_at: datetime
    """Until when (UTC)."""


class CaseSummary(_Body):
    """One case in a list (no prompt, candidates or internal reasoning)."""

    id: str
    """Case id."""
    run: str
    """Run of the episode."""
    episode: str
    """Episode id."""
    status: CaseStatus
    """``open``, ``tie``, ``decided`` or ``withdrawn``."""
    priority: int
    """Higher is more urgent."""
    created_at: datetime
    """When it was submitted (UTC)."""
    triggers: list[str]
    """Why it escalated."""
    principles: list[str]
    """Principles involved."""
    reviewers_required: int
    """How many reviewers must decide."""
    decisions: int
    """How many decisions it has."""
    open_slots: int
    """How many more reviewers may claim it now."""
    leases: list[LeaseSummary]
    """Unexpired claims."""
    mine: bool
    """Whether you hold one of them."""


class CaseList(_Body):
    """A page of cases."""

    cases: list[CaseSummary]
    """Case summaries, highest priority first, then oldest."""
    total: int
    """Matching cases in all pages."""


class CaseView(_Case):
    """One case as a reviewer sees it: other reviewers' decisions are left out until you
    decided or the case is settled."""

    internal_reasoning: Literal[True] = True
    """Marks ``details`` as the agents' internal reasoning (never shown to end users)."""
    final_decision: FinalDecision | None = None
    """The decision that stands, once the case is decided."""


Id = Annotated[str, Field(min_length=1, max_length=200)]


def finish_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Add what FastAPI cannot derive to the generated schema: the security schemes, and
    :class:`ApiError` as the body of the 422 that FastAPI documents for every route with
    parameters (the API's validation errors are ``{"error": ...}`` like all others)."""
    components = schema.setdefault("components", {})
    error_ref = {"$ref": "#/components/schemas/ApiError"}
    for item in schema.get("paths", {}).values():
        for op in item.values():
            invalid = op.get("responses", {}).get("422")
            if invalid is not None:
                invalid["description"] = ERROR_MEANINGS[422]
                invalid["content"] = {"application/json": {"schema": error_ref}}
    schemas = components.get("schemas", {})
    if "HTTPValidationError" in schemas:
        components.setdefault("schemas", {})["ApiError"] = ApiError.model_json_schema()
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
    components["securitySchemes"] = {
        BEARER: {
            "type": "http",
            "scheme": "bearer",
            "description": "The `session` of `POST /api/login`.",
        },
        COOKIE_SCHEME: {
            "type": "apiKey",
            "in": "cookie",
            "name": "oversight_session",
            "description": "The review page's session cookie; POST requests must also send "
            "the session's CSRF token as the `X-CSRF-Token` header (else 403).",
        },
    }
    return schema


__all__ = [
    "ERROR_MEANINGS",
    "SECURITY",
    "ApiError",
    "CaseList",
    "CaseSummary",
    "CaseView",
    "ChooseCandidate",
    "ClaimRequest",
    "DecideRequest",
    "EditAnswer",
    "LeaseReply",
    "LeaseSummary",
    "LoginReply",
    "LoginRequest",
    "ReleaseReply",
    "StatusFilter",
    "errors",
    "finish_openapi",
]
