"""The single-turn HH-RLHF harmless-base replies labelled by hand for refusal
(``benchmarks/data/hh_rlhf_refusal_labels.csv``), shared by the refusal-detector and the
escalation-policy benchmarks."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import NamedTuple

LABELS = Path(__file__).parent / "data" / "hh_rlhf_refusal_labels.csv"


class LabelledReply(NamedTuple):
    row: str
    """The conversation's line in ``harmless-base/test.jsonl``."""
    side: str
    """``chosen`` or ``rejected``."""
    prompt: str
    reply: str
    refuses: bool


def labelled_replies(root: Path, labels: Path = LABELS) -> list[LabelledReply]:
    """Every labelled reply with its user turn, in the label file's order."""
    lines = (root / "hh-rlhf" / "harmless-base" / "test.jsonl").read_text(encoding="utf-8")
    docs = [json.loads(line) for line in lines.splitlines() if line.strip()]
    out = []
    with labels.open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            turns = re.split(r"\n\n(Human|Assistant): ", docs[int(r["row"])][r["side"]])
            (_, prompt), (_, reply) = zip(turns[1::2], turns[2::2], strict=True)
            out.append(
                LabelledReply(
                    r["row"], r["side"], prompt.strip(), reply.strip(), r["label"] == "refusal"
                )
            )
    return out
