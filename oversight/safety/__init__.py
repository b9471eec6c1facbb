"""The safety agent's brains: jailbreak signals, the harm classifier and the refusal detector.

* :func:`detect_signals` / :func:`normalize` - de-obfuscate and name jailbreak techniques;
* :class:`SafetyClassifier` - fine-tuned MiniLM heads: P(harmful request), P(refusal);
  :meth:`~SafetyClassifier.assess` combines them with the signals into a :class:`SafetyVerdict`;
* :class:`RefusalDetector` - full compliance vs any refusal, with gibberish / echo checks;
  :class:`RefusalProbe` - an optional linear probe on MiniLM embeddings it can add;
* :func:`find_injections` / :func:`tool_use_violation` - instructions planted in tool results,
  answers that make a tool do what the user did not ask (:mod:`.tools`);
* :class:`PrincipleHeads` - P(violates principle) for privacy, lawful, fairness, manipulation,
  honesty and balance, small heads on frozen MiniLM embeddings (:mod:`.principles`);
* ``python -m oversight.safety.train`` - reproducible training on the project's seed set
  (``python -m oversight.safety.train_principles`` for the principle heads).
"""

from .classifier import SafetyClassifier as SafetyClassifier
from .classifier import SafetyVerdict as SafetyVerdict
from .classifier import load_classifier as load_classifier
from .classifier import weights_available as weights_available
from .jailbreak import conversation_signals as conversation_signals
from .jailbreak import detect_signals as detect_signals
from .jailbreak import normalize as normalize
from .jailbreak import scan_output as scan_output
from .principles import PrincipleHeads as PrincipleHeads
from .principles import principle_weights_available as principle_weights_available
from .refusal import RefusalDetector as RefusalDetector
from .refusal import RefusalJudgment as RefusalJudgment
from .refusal import phrase_refusal as phrase_refusal
from .refusal_probe import RefusalProbe as RefusalProbe
from .tools import find_injections as find_injections
from .tools import tool_use_violation as tool_use_violation

__all__ = [
    "PrincipleHeads",
    "RefusalDetector",
    "RefusalJudgment",
    "RefusalProbe",
    "SafetyClassifier",
    "SafetyVerdict",
    "conversation_signals",
    "detect_signals",
    "find_injections",
    "load_classifier",
    "normalize",
    "phrase_refusal",
    "principle_weights_available",
    "scan_output",
    "tool_use_violation",
    "weights_available",
]
