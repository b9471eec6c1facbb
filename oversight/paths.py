"""Where configuration files and caches live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"
"""Packaged copies of ``roles/``, ``constitutions/`` and ``escalation/``."""


def resolve_config(path: str | Path, *, relative_to: str | Path | None = None) -> Path:
    """Find a config file: as given, then next to ``relative_to``'s directory, then packaged.

    ``roles/default.yaml`` therefore works from a clone (the repository's folder) and after a
    plain ``pip install`` (the copy inside the wheel).
    """
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    if relative_to is not None:
        base = Path(relative_to)
        for root in (base.parent, *base.parents):
            if (root / p).exists():
                return root / p
    packaged = DATA_DIR / p
    if packaged.exists():
        return packaged
    return p


def standalone_hierarchy(path: str | Path) -> dict[str, Any]:
    """A hierarchy file's YAML as a dict whose ``constitution`` and ``escalation`` are absolute
    paths (found as the hierarchy loader finds them), so a changed copy can be written anywhere
    (cycle rounds, benchmark variants)."""
    import yaml

    source = resolve_config(path)
    spec: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    for key in ("constitution", "escalation"):
        if isinstance(spec.get(key), str):
            spec[key] = str(resolve_config(spec[key], relative_to=source).resolve())
    return spec


def cache_dir() -> Path:
    """The user's cache directory for oversight (``$OVERSIGHT_CACHE`` or ``~/.cache/oversight``)."""
    root = os.environ.get("OVERSIGHT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "oversight"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
