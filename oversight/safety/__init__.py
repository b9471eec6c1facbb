"""The safety agent's brains: jailbreak signals, the harm classifier and the refusal detector.

* :func:`detect_signals` / :func:`normalize` - de-obfuscate and name jailbreak techniques;
* :class:`SafetyClassifier` - fine-tuned MiniLM heads: P(harmful request), P(refusal);
  :meth:`~SafetyClassifier.assess` combines them with the signals into a :class:`SafetyVerdict`;
* :class:`RefusalDetector` - full compliance vs any refusal, with gibberish / echo checks;
* ``python -m oversight.safety.train`` - reproducible training on the project's seed set.
"""

from .classifier import SafetyClassifier as SafetyClassifier
from .classifier import SafetyVerdict as SafetyVerdict
from .classifier import load_classifier as load_classifier
from .classifier import weights_available as weights_available
from .jailbreak import conversation_signals as conversation_signals
from .jailbreak import detect_signals as detect_signals
from .jailbreak import normalize as normalize
from .jailbreak import scan_output as scan_output
from .refusal import RefusalDetector as RefusalDetector
from .refusal import RefusalJudgment as RefusalJudgment
from .refusal import phrase_refusal as phrase_refusal

__all__ = [
    "RefusalDetector",
    "RefusalJudgment",
    "SafetyClassifier",
    "SafetyVerdict",
    "conversation_signals",
    "detect_signals",
    "load_classifier",
    "normalize",
    "phrase_refusal",
    "scan_output",
    "weights_available",
]
