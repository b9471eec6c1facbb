"""Shared fixtures, and the one rule for tests that need something outside Python.

A test that needs a service (PostgreSQL, NATS), a model, the benchmark data or a browser calls
:func:`skip_or_fail` when it is missing: on a laptop the test skips with the reason; under
``CI=true`` it fails, so CI cannot pass while something it should exercise is absent.
"""

from __future__ import annotations

import importlib
import os
import socket
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("OVERSIGHT_DATA") or REPO.parent / "shared" / "data")
"""The workplace's benchmark data: ``$OVERSIGHT_DATA``, else ``../shared/data``."""
POSTGRES_URL = os.environ.get(
    "OVERSIGHT_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NATS_URL = os.environ.get("OVERSIGHT_TEST_NATS", "nats://127.0.0.1:4222")
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
"""True under ``CI=true``: a missing service, model, data set or browser fails the test."""


def skip_or_fail(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip with ``reason``; under ``CI=true`` fail with it instead."""
    if IN_CI:
        pytest.fail(
            f"{reason} (CI=true: a missing service, model, data set or browser is a failure)",
            pytrace=False,
        )
    pytest.skip(reason, allow_module_level=allow_module_level)


def import_or_fail(module: str, reason: str | None = None) -> ModuleType:
    """``pytest.importorskip`` that fails under ``CI=true`` (CI installs every extra)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        skip_or_fail(reason or f"{module} is not installed", allow_module_level=True)


def requires(available: bool, reason: str) -> pytest.MarkDecorator:
    """Mark a test (or a module's ``pytestmark``) as needing something: when ``available`` is
    false it skips with ``reason``, or fails under ``CI=true`` (see :func:`skip_or_fail`)."""
    return pytest.mark.requires(available=available, reason=reason)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for mark in item.iter_markers("requires"):
        if not mark.kwargs["available"]:
            skip_or_fail(mark.kwargs["reason"])


@pytest.fixture
def shared_data() -> Path:
    """The workplace's benchmark data (``$OVERSIGHT_DATA`` or ``../shared/data``)."""
    if not SHARED_DATA.exists():
        skip_or_fail(f"benchmark data not found at {SHARED_DATA} (set $OVERSIGHT_DATA)")
    return SHARED_DATA


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_url() -> str:
    """URL of the PostgreSQL test server (127.0.0.1:5432, database ``test``)."""
    if not _port_open("127.0.0.1", 5432):
        skip_or_fail("no PostgreSQL server answers on 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture
def nats_url() -> str:
    """URL of the NATS test server (127.0.0.1:4222)."""
    if not _port_open("127.0.0.1", 4222):
        skip_or_fail("no NATS server answers on 127.0.0.1:4222")
    return NATS_URL


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
