"""What crosses NATS between the episode coordinator and agent workers, and how it is checked.

Every message is a frozen pydantic model serialised as JSON, with the envelope format's
:data:`~oversight.messages.SCHEMA_VERSION`; a message of another version is refused with an
error naming both versions (:func:`read_wire`), never half-read. A worker proves it loaded the
same configuration as the coordinator with :func:`hierarchy_hash` (hierarchy, constitution with
overlays and escalation policy): the hash is part of every request subject, announced in the
worker's hello and checked again on each request.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import TransportError
from ..messages import SCHEMA_VERSION, Capability, Envelope, Failure, Payload, Prompt

HELLO_SUBJECT = "oversight.hello"
"""Workers answer a request on this subject with their :class:`WorkerHello` (no queue group:
every worker answers)."""
HEARTBEAT = b'{"kind":"working"}'
"""What a worker sends on a request's reply subject when it receives it, then every
``heartbeat`` seconds while it works: silence means the worker died and the request is sent
again (to another replica)."""

_TOKEN = re.compile(r"^[A-Za-z0-9_-]+$")
M = TypeVar("M", bound=BaseModel)


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AgentCall(_Wire):
    """A request to one agent, with everything a stateless replica needs to answer it."""

    kind: Literal["agent_call"] = "agent_call"
    schema_version: int = SCHEMA_VERSION
    """Message format version (:data:`oversight.messages.SCHEMA_VERSION`)."""
    hierarchy: str
    """:func:`hierarchy_hash` of the coordinator's configuration."""
    agent: str
    """The agent asked (an assess request asks each assessor separately)."""
    capability: Capability
    """What it is asked to do."""
    request: Envelope
    """The request envelope as published on the coordinator's bus."""
    prompt: Prompt
    """The episode's prompt."""
    candidates: dict[str, str]
    """Candidate id -> text: those the request names (every candidate so far for a
    capability in the role's :attr:`~oversight.agents.Agent.reads_episode`)."""
    stage: str
    """What the episode is doing now."""
    published: tuple[Envelope, ...] = ()
    """The episode's envelopes so far, only for a capability in the role's
    :attr:`~oversight.agents.Agent.reads_episode` (the reviser reads the critiques among
    them); empty otherwise."""


class AgentAnswer(_Wire):
    """A worker's answer: the agent's messages (the coordinator wraps and journals them), or
    why it failed."""

    kind: Literal["agent_answer"] = "agent_answer"
    schema_version: int = SCHEMA_VERSION
    """Message format version."""
    worker: str
    """The worker that answered (``host:pid``)."""
    messages: tuple[Payload, ...] = ()
    """The agent's messages, in order."""
    failure: Failure | None = None
    """Set when the agent (or the worker) failed: the episode fails with this."""


class WorkerHello(_Wire):
    """A worker announces itself: what it serves and with which configuration."""

    kind: Literal["worker_hello"] = "worker_hello"
    schema_version: int = SCHEMA_VERSION
    """Message format version."""
    worker: str
    """``host:pid``."""
    hierarchy: str
    """:func:`hierarchy_hash` of the worker's configuration."""
    hierarchy_name: str
    """The hierarchy's ``name``."""
    source: str | None = None
    """The hierarchy file the worker loaded."""
    agents: dict[str, tuple[Capability, ...]]
    """Agent name -> the capabilities served."""
    heartbeat: float = 1.0
    """Seconds between its heartbeats (the coordinator checks it is below its
    ``heartbeat_timeout``)."""


def hierarchy_hash(spec: Any) -> str:
    """A hash of a loaded hierarchy with its constitution (overlays applied) and escalation
    policy: equal on two machines exactly when they run the same configuration (the file's
    path and comments do not count)."""
    parts = {
        "hierarchy": spec.model_dump(mode="json", exclude={"source"}),
        "constitution": spec.constitution.model_dump(mode="json"),
        "policy": spec.policy.model_dump(mode="json"),
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def agent_subject(hierarchy: str, agent: str, capability: str) -> str:
    """The NATS subject of one agent's capability (its replicas form the queue group named
    after the agent)."""
    if not _TOKEN.match(agent):
        raise TransportError(
            f"agent name {agent!r} cannot be a NATS subject token: use letters, digits, '-' "
            "and '_' only (rename it in the hierarchy)"
        )
    return f"oversight.{hierarchy}.{agent}.{capability}"


def read_wire(data: bytes, model: type[M], *, what: str) -> M:
    """Validate one wire message; :class:`TransportError` for another schema version or a
    malformed message (naming ``what`` it was)."""
    try:
        message = model.model_validate_json(data)
    except ValidationError as err:
        try:
            version = json.loads(data).get("schema_version")
        except (ValueError, AttributeError):
            version = None
        if version is not None and version != SCHEMA_VERSION:
            raise _version_error(version, what) from None
        raise TransportError(f"malformed {what}: {str(err)[:500]}") from None
    version = getattr(message, "schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise _version_error(version, what)
    return message


def _version_error(version: object, what: str) -> TransportError:
    return TransportError(
        f"{what} has message schema version {version!r}; this process reads version "
        f"{SCHEMA_VERSION}: run the same oversight release on the coordinator and its workers"
    )


__all__ = [
    "HEARTBEAT",
    "HELLO_SUBJECT",
    "AgentAnswer",
    "AgentCall",
    "WorkerHello",
    "agent_subject",
    "hierarchy_hash",
    "read_wire",
]
