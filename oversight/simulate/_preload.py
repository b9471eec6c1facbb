"""Imported once by the simulator's fork server: workers then start with compiled kernels.

``run_plans`` starts its worker pool with the ``forkserver`` method (safe when the parent has
threads). The server imports this module before it forks any worker, so each worker inherits
numpy, numba and the engine's kernels already compiled (or loaded from numba's cache) instead
of importing and loading them itself.
"""

from __future__ import annotations

from .engine import warm_up

warm_up()
