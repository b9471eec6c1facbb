"""The rule of tests/conftest.py: a missing service, model or browser skips on a laptop and
fails under ``CI=true``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

NEEDY = """
from conftest import import_or_fail, requires, skip_or_fail


@requires(False, "no widget server on 127.0.0.1:1")
def test_marked():
    pass


def test_called():
    skip_or_fail("no gadget model in the cache")


def test_imported():
    import_or_fail("no_such_module_for_oversight_tests")


@requires(True, "never shown")
def test_present():
    pass
"""


def _pytest(folder: Path, ci: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CI": ci, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q", "-rA",
         "--rootdir", str(folder), "-c", os.devnull, str(folder)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _outcomes(stdout: str) -> dict[str, int]:
    """``{"passed": 1, "skipped": 3}`` from pytest's last line."""
    last = stdout.strip().splitlines()[-1]
    found = re.findall(r"(\d+) (passed|skipped|failed|errors?)", last)
    return {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in found}


@pytest.mark.parametrize(
    ("ci", "expected"),
    [("", {"passed": 1, "skipped": 3}), ("true", {"passed": 1, "failed": 2, "error": 1})],
)
def test_missing_things_skip_locally_and_fail_under_ci(
    tmp_path: Path, ci: str, expected: dict[str, int]
) -> None:
    (tmp_path / "test_needy.py").write_text(NEEDY)
    res = _pytest(tmp_path, ci)
    # under CI the marked test fails in its setup (an "error"), the others in their body
    assert _outcomes(res.stdout) == expected, res.stdout + res.stderr
    assert res.returncode == (1 if ci else 0)
    for reason in ("no widget server", "no gadget model", "no_such_module_for_oversight_tests"):
        assert reason in res.stdout
    assert ("CI=true" in res.stdout) == (ci == "true")
