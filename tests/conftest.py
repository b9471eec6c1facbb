from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
POSTGRES_URL = os.environ.get(
    "OVERSIGHT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def shared_data() -> Path:
    """The workplace's benchmark data (``../shared/data``); skips where it is absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> str:
    """URL of the PostgreSQL test server; skips with a reason where none answers."""
    if not _port_open("127.0.0.1", 5432):
        pytest.skip("no PostgreSQL server answers on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
