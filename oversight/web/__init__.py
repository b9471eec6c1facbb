"""The review web page for the human escalation queue (``oversight queue serve``).

Needs the ``web`` extra: ``pip install 'oversight[web]'``.
"""

from __future__ import annotations

from .app import create_app as create_app
from .graph import resolution_svg as resolution_svg

__all__ = ["create_app", "resolution_svg"]
