"""Measuring overseers: labelled evaluation sets and the agent evaluation harness.

* :mod:`~oversight.evaluation.sets` - the one registry of labelled sets (also read by
  ``oversight eval`` and by the near-duplicate check of every training command,
  :mod:`oversight.dedup`), and users' own JSONL sets;
* :mod:`~oversight.evaluation.harness` - every overseer of a hierarchy on those sets;
* :mod:`~oversight.evaluation.metrics` - accuracy, precision / recall, AUROC, calibration;
  a judge's ranking accuracy, position bias and length bias;
* :mod:`~oversight.evaluation.report` - report.json / .md / reliability.png and the
  calibration file ``oversight simulate`` reads.
"""

from .harness import QUESTIONS as QUESTIONS
from .harness import AgentResult as AgentResult
from .harness import evaluate_agents as evaluate_agents
from .harness import ranking_pairs as ranking_pairs
from .metrics import binary_metrics as binary_metrics
from .metrics import ranking_metrics as ranking_metrics
from .report import build_calibration as build_calibration
from .report import build_report as build_report
from .report import models_fingerprint as models_fingerprint
from .report import write_report as write_report
from .sets import REGISTRY as REGISTRY
from .sets import Example as Example
from .sets import LabelledSet as LabelledSet
from .sets import available_sets as available_sets
from .sets import default_data_dir as default_data_dir
from .sets import load_set as load_set

__all__ = [
    "QUESTIONS",
    "REGISTRY",
    "AgentResult",
    "Example",
    "LabelledSet",
    "available_sets",
    "binary_metrics",
    "build_calibration",
    "build_report",
    "default_data_dir",
    "evaluate_agents",
    "load_set",
    "models_fingerprint",
    "ranking_metrics",
    "ranking_pairs",
    "write_report",
]
