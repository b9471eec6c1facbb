"""Recursive-oversight simulation: the same hierarchies, simulated agents, 10^6 episodes/s.

``run_study(hierarchy, config, sweeps)`` simulates every point of a sweep with the runtime's own
decision core (:func:`oversight.consensus.decide`), and ``write_results`` writes
``results.json``, ``results.csv`` and PNG plots. The agent model lives in
:mod:`oversight.simulate.behaviour`, shared with the ``simulated`` backend.
"""

from .behaviour import AgentBehaviour as AgentBehaviour
from .behaviour import principle_kind as principle_kind
from .config import SimulationConfig as SimulationConfig
from .config import load_calibration as load_calibration
from .config import load_simulation_config as load_simulation_config
from .config import parse_sweep as parse_sweep
from .config import sweep_parameter_names as sweep_parameter_names
from .metrics import wilson as wilson
from .study import StudyResult as StudyResult
from .study import run_study as run_study
from .study import write_results as write_results

__all__ = [
    "AgentBehaviour",
    "SimulationConfig",
    "StudyResult",
    "load_calibration",
    "load_simulation_config",
    "parse_sweep",
    "principle_kind",
    "run_study",
    "sweep_parameter_names",
    "wilson",
    "write_results",
]
