"""One exception tree for the whole framework.

Every error a user can meet derives from :class:`OversightError`, so ``except OversightError``
catches everything the framework raises on purpose::

    OversightError
    ├── ConfigError                 a constitution, hierarchy or policy file is wrong
    │   ├── PriorityCycleError      the priority graph has a cycle (names the cycle and the file)
    │   ├── UnknownPrincipleError   a principle id that the constitution does not define
    │   ├── UnknownRoleError        a role name that no registered role has
    │   └── UnknownModelError       a model or backend name that nothing defines
    ├── InputError                  a prompt file or prompt that cannot be used (empty, too large,
    │                               invalid UTF-8, NUL bytes)
    ├── BusError                    publishing after shutdown, a request without a reply
    │   ├── RequestTimeout          request/reply ran out of time
    │   └── TransportError          NATS unreachable, another schema version
    ├── AgentError                  an agent service failed to answer a request (names the
    │                               agent and its error; fails that episode only)
    ├── BackendError                a model backend failed (server down, reply that does not parse)
    ├── EscalationError             the human queue refused an operation
    │   ├── CaseNotFound            no case with that id
    │   ├── LeaseError              claim/decide without a valid lease, or the case is taken
    │   └── QueueStoreError         the queue database is locked, corrupt or unreachable
    ├── JournalError                a run journal cannot be read or written
    └── PrerequisiteError           an optional extra is missing; the message names the
                                    ``pip install`` that fixes it

Messages are written for the person at the keyboard: they say which file, key or line is wrong,
what was expected, and how to fix it. A :class:`ConfigError` carries every problem found in one
file (``err.problems``, each a :class:`ConfigProblem` with its key path and line), so a user fixes
them in one pass instead of one run per mistake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class OversightError(Exception):
    """Base class of every error the framework raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a configuration file: where it is and what to do about it."""

    key: str
    """The key path as a user reads it (``agents[2] (judge).model``); empty for the whole file."""
    message: str
    """What is wrong, what was expected, and the fix."""
    line: int | None = None
    """1-based line in the file, when the file was read from YAML."""
    loc: tuple[str | int, ...] = ()
    """The key path as keys and list indices (``("agents", 2, "model")``), to find the line."""
    error: type[ConfigError] | None = None
    """The most specific error class for this problem (``UnknownRoleError``, ...)."""

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.key}: {self.message}" if self.key else f"{where}{self.message}"


def _render(problems: Sequence[ConfigProblem]) -> str:
    if len(problems) == 1:
        return str(problems[0])
    return f"{len(problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)


class ConfigError(OversightError):
    """A configuration file (constitution, hierarchy, escalation policy) is invalid.

    ``path`` is the file when one is known; ``str(err)`` always names it. ``problems`` lists
    every problem found in the file (empty when the error was raised with a plain message).
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        path: str | Path | None = None,
        problems: Sequence[ConfigProblem] = (),
    ) -> None:
        self.path = str(path) if path is not None else None
        self.problems = tuple(problems)
        if message is None:
            message = _render(self.problems)
        self.detail = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class PriorityCycleError(ConfigError):
    """The principles' priority edges form a cycle; ``cycle`` lists it in order."""

    def __init__(
        self, cycle: list[str], *, path: str | Path | None = None, hint: str | None = None
    ) -> None:
        self.cycle = list(cycle)
        loop = " -> ".join([*cycle, cycle[0]]) if cycle else "?"
        message = (
            f"priority cycle {loop}: an edge 'a -> b' means a prevails over b, so a cycle "
            "makes the ordering undefined. Remove or reverse one of these edges"
        )
        if hint:
            message += f" ({hint})"
        super().__init__(message, path=path)


class UnknownPrincipleError(ConfigError):
    """A principle id was referenced that the constitution does not define."""


class UnknownRoleError(ConfigError):
    """A role name was used that is not registered."""


class UnknownModelError(ConfigError):
    """A model name or backend kind was used that is not defined."""


class InputError(OversightError):
    """A prompt or prompt file cannot be used as given."""


class BusError(OversightError):
    """The message bus refused an operation (e.g. publishing after shutdown)."""


class RequestTimeout(BusError):
    """A request/reply exchange on the bus timed out."""


class TransportError(BusError):
    """The bus's network transport (NATS) failed: server unreachable, a message of another
    schema version, a malformed message."""


class AgentError(OversightError):
    """An agent raised while serving a request; its episode fails with this.

    ``error_type`` is the class name of the agent's exception (e.g. ``BackendError``) and
    ``agent`` the agent's name.
    """

    def __init__(self, message: str, *, error_type: str, agent: str | None = None) -> None:
        self.error_type = error_type
        self.agent = agent
        super().__init__(message)


class BackendError(OversightError):
    """A model backend failed: a server error, a timeout, or a reply that does not parse."""


class EscalationError(OversightError):
    """The human escalation queue refused an operation."""


class CaseNotFound(EscalationError):
    """No case with the given id exists in the queue."""


class LeaseError(EscalationError):
    """The case is claimed by someone else, the lease expired, or no claim was made."""


class QueueStoreError(EscalationError):
    """The queue's database is locked, corrupt or unreachable."""


class JournalError(OversightError):
    """A run journal cannot be read or written."""


class PrerequisiteError(OversightError):
    """An optional dependency is missing; the message says which ``pip install`` fixes it."""


__all__ = [
    "AgentError",
    "BackendError",
    "BusError",
    "CaseNotFound",
    "ConfigError",
    "ConfigProblem",
    "EscalationError",
    "InputError",
    "JournalError",
    "LeaseError",
    "OversightError",
    "PrerequisiteError",
    "PriorityCycleError",
    "QueueStoreError",
    "RequestTimeout",
    "TransportError",
    "UnknownModelError",
    "UnknownPrincipleError",
    "UnknownRoleError",
]
