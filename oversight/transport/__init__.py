"""Transports of the bus beyond one process.

The bus itself (:mod:`oversight.bus`) is in-process and the default. :mod:`.nats` runs agents
in worker processes on any machine over NATS: ``oversight worker`` serves agents,
``oversight run --bus nats://...`` coordinates. :mod:`._wire` defines what crosses the wire and
how it is checked (schema version, configuration hash). nats-py is imported only when a NATS
connection is made (``pip install 'oversight[nats]'``).
"""

from __future__ import annotations

from ._wire import (
    HEARTBEAT,
    HELLO_SUBJECT,
    AgentAnswer,
    AgentCall,
    WorkerHello,
    agent_subject,
    hierarchy_hash,
    read_wire,
)
from .nats import RemoteAgents, TransportStats, Worker, build_agents, connect, start_server_hint

__all__ = [
    "HEARTBEAT",
    "HELLO_SUBJECT",
    "AgentAnswer",
    "AgentCall",
    "RemoteAgents",
    "TransportStats",
    "Worker",
    "WorkerHello",
    "agent_subject",
    "build_agents",
    "connect",
    "hierarchy_hash",
    "read_wire",
    "start_server_hint",
]
