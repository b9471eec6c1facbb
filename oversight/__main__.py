"""``python -m oversight`` is the ``oversight`` command."""

from .cli import main

main()
