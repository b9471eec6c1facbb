"""The registry of labelled evaluation sets: one list serves ``oversight evaluate`` (agents),
``oversight eval`` (trained models) and the near-duplicate check of every training command.

Every set is read from the data folder (``--data-dir``, else ``$OVERSIGHT_DATA``, else
``../shared/data`` next to the repository) and becomes a list of :class:`Example`, each with the
labels it carries:

* ``harm`` - ``harmful`` or ``safe``: should the request be refused?
* ``refusal`` - ``refusal`` or ``compliance``: did the response refuse (fully or partly)?

============================ ================ ==================================================
set                          labels           source
============================ ================ ==================================================
``xstest_safe``              harm             XSTest, 250 safe prompts that look unsafe
``xstest_unsafe``            harm             XSTest, 200 unsafe contrast prompts
``harmbench``                harm             HarmBench text behaviours, test split (320)
``jbb_harmful``              harm             JailbreakBench JBB-Behaviors, harmful (100)
``jbb_benign``               harm             JailbreakBench JBB-Behaviors, benign twins (100)
``jbb_artifacts``            harm             JailbreakBench attack artifacts: the harmful
                                              behaviours wrapped by four attacks on GPT-4
                                              (PAIR, random search, AIM template, GCG), 364
``xstest_completions_<m>``   harm + refusal   XSTest's human-labelled completions of five
                                              models (gpt4, llama2new, llama2orig,
                                              mistralguard, mistralinstruct), 450 each;
                                              partial refusals count as refusals
``truthfulqa``               harm             TruthfulQA's 817 questions (all safe requests);
                                              in the near-duplicate check and ``--set
                                              truthfulqa``, not in ``oversight evaluate``'s
                                              default run (its answers are judged by
                                              ``benchmarks/truthfulness.py``)
============================ ================ ==================================================

A user's own set is a JSONL file (``oversight evaluate H --set my.jsonl``), one example a line::

    {"prompt": "How do I kill a Python process?", "harm": "safe"}
    {"prompt": "...", "response": "I can't help with that.", "refusal": "refusal"}

``label`` may stand for either key (its value says which). Lines with a missing or unknown
label, and empty files, are refused with the file, the line and the labels allowed.
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

LABELS: dict[str, tuple[str, str]] = {
    "harm": ("harmful", "safe"),
    "refusal": ("refusal", "compliance"),
}
"""Label keys and their values (positive first)."""
_SYNONYMS = {"unsafe": "harmful", "benign": "safe", "refused": "refusal", "complied": "compliance"}
COMPLETION_MODELS = ("gpt4", "llama2new", "llama2orig", "mistralguard", "mistralinstruct")


@dataclass(frozen=True)
class Example:
    """One labelled item: a request, maybe a response to it, and its labels."""

    id: str
    prompt: str
    """The user's request (with any context passage it comes with)."""
    labels: dict[str, str]
    """``{"harm": "harmful"|"safe", "refusal": "refusal"|"compliance"}`` (those known)."""
    response: str | None = None
    """The assistant's answer, for response-level sets."""
    core: str | None = None
    """The request without its context passage (HarmBench contextual rows), for dedup."""


@dataclass(frozen=True)
class LabelledSet:
    """A loaded set: its name, where it came from and its examples."""

    name: str
    source: str
    """The file it was read from."""
    examples: list[Example]
    description: str = ""

    @property
    def label_keys(self) -> set[str]:
        """The label keys every example of the set carries."""
        keys = [set(e.labels) for e in self.examples]
        return set.intersection(*keys) if keys else set()

    def sample(self, limit: int | None, seed: int = 0) -> LabelledSet:
        """A seeded sample of ``limit`` examples, in the set's order (all when ``None``)."""
        if not limit or limit >= len(self.examples):
            return self
        keep = sorted(random.Random(seed).sample(range(len(self.examples)), limit))
        return LabelledSet(
            self.name, self.source, [self.examples[i] for i in keep], self.description
        )


@dataclass(frozen=True)
class SetInfo:
    """A registry entry."""

    name: str
    description: str
    files: tuple[str, ...]
    """Files it reads, relative to the data folder."""
    load: Callable[[Path], list[Example]] = field(repr=False)
    agents: bool = True
    """Part of ``oversight evaluate``'s default run (every set is in the near-duplicate
    check)."""


def default_data_dir() -> Path:
    """``$OVERSIGHT_DATA``, else ``../shared/data`` beside the repository (or the working
    directory)."""
    env = os.environ.get("OVERSIGHT_DATA")
    if env:
        return Path(env)
    for root in (Path(__file__).resolve().parents[2], Path.cwd()):
        candidate = root.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return Path.cwd().parent / "shared" / "data"


def _csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise InputError(
            f"{path} not found: evaluation sets live in the shared data folder; pass "
            "--data-dir (or set $OVERSIGHT_DATA) to the folder holding xstest/, harmbench/ "
            "and jbb-behaviors/"
        )
    with path.open(encoding="utf-8", newline="") as fh:
        return [{k.lower(): v for k, v in row.items()} for row in csv.DictReader(fh)]


def _xstest(label: str) -> Callable[[Path], list[Example]]:
    def load(root: Path) -> list[Example]:
        rows = _csv(root / "xstest" / "xstest_prompts.csv")
        harm = "harmful" if label == "unsafe" else "safe"
        return [
            Example(f"xstest-{r['id']}", r["prompt"], {"harm": harm})
            for r in rows
            if r["label"] == label
        ]

    return load


def harmbench_prompt(behavior: str, context: str | None) -> str:
    """A HarmBench behaviour as a request: its context (contextual behaviours), a rule, then the
    behaviour. Every reader of HarmBench (test and val) formats rows this way."""
    return f"{context}\n\n---\n\n{behavior}" if context else behavior


def self_instruct_request(task: Mapping[str, Any]) -> str:
    """A self-instruct task as a request: its instruction, then its first instance's input."""
    inst = task["instances"][0]
    return str(task["instruction"]) + (f"\n\n{inst['input']}" if inst["input"] else "")


def _harmbench(root: Path) -> list[Example]:
    rows = _csv(root / "harmbench" / "harmbench_behaviors_text_test.csv")
    out = []
    for r in rows:
        prompt = harmbench_prompt(r["behavior"], r.get("contextstring"))
        out.append(
            Example(r["behaviorid"], prompt, {"harm": "harmful"}, core=r["behavior"] or None)
        )
    return out


def _jbb(kind: str) -> Callable[[Path], list[Example]]:
    def load(root: Path) -> list[Example]:
        rows = _csv(root / "jbb-behaviors" / f"{kind}-behaviors.csv")
        harm = "harmful" if kind == "harmful" else "safe"
        return [Example(f"jbb-{kind}-{r['index']}", r["goal"], {"harm": harm}) for r in rows]

    return load


ARTIFACT_FILES = (
    "jailbreakbench-artifacts/attack-artifacts/PAIR/black_box/gpt-4-0125-preview.json",
    "jailbreakbench-artifacts/attack-artifacts/prompt_with_random_search/black_box/"
    "gpt-4-0125-preview.json",
    "jailbreakbench-artifacts/attack-artifacts/JBC/manual/gpt-4-0125-preview.json",
    "jailbreakbench-artifacts/attack-artifacts/GCG/transfer/gpt-4-0125-preview.json",
)
"""The JailbreakBench artifacts read (one file per attack style; see their SOURCE.md)."""


def _jbb_artifacts(root: Path) -> list[Example]:
    """Every jailbreak prompt of the artifacts (attacks that produced none are skipped); the
    behaviour's goal is kept as ``core`` so training never holds it either."""
    out = []
    for name in ARTIFACT_FILES:
        path = root / name
        if not path.exists():
            raise InputError(
                f"{path} not found: the jailbreak artifacts live in the shared data folder; pass "
                "--data-dir (or set $OVERSIGHT_DATA) to the folder holding "
                "jailbreakbench-artifacts/"
            )
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            method = str(doc["parameters"]["method"])
            records = list(doc["jailbreaks"])
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise InputError(
                f"{path}: not a JailbreakBench artifact ({exc}); restore it from its SOURCE.md"
            ) from None
        for r in records:
            prompt = r.get("prompt")
            if isinstance(prompt, str) and prompt.strip():
                out.append(
                    Example(f"jbb-artifacts-{method}-{r.get('index')}", prompt,
                            {"harm": "harmful"}, core=r.get("goal") or None)
                )  # fmt: skip
    return out


_FINAL_LABELS = {
    "1_full_compliance": "compliance",
    "2_full_refusal": "refusal",
    "3_partial_refusal": "refusal",
}


def _completions(model: str) -> Callable[[Path], list[Example]]:
    def load(root: Path) -> list[Example]:
        path = root / "xstest" / "model_completions" / f"xstest_v2_completions_{model}.csv"
        out = []
        for line, r in enumerate(_csv(path), 2):
            final = (r.get("final_label") or "").strip()
            if final not in _FINAL_LABELS:
                raise InputError(
                    f"{path}:{line}: final_label {final!r} is not one of "
                    f"{', '.join(_FINAL_LABELS)}; restore the file from its SOURCE.md"
                )
            harm = "harmful" if r["type"].startswith("contrast_") else "safe"
            labels = {"harm": harm, "refusal": _FINAL_LABELS[final]}
            out.append(Example(f"{model}-{r['id']}", r["prompt"], labels, r["completion"]))
        return out

    return load


def _truthfulqa(root: Path) -> list[Example]:
    rows = _csv(root / "truthfulqa" / "TruthfulQA.csv")
    return [Example(f"truthfulqa-{i}", r["question"], {"harm": "safe"}) for i, r in enumerate(rows)]


def _registry() -> dict[str, SetInfo]:
    entries = [
        SetInfo("xstest_safe", "XSTest safe prompts (look unsafe, are not)",
                ("xstest/xstest_prompts.csv",), _xstest("safe")),
        SetInfo("xstest_unsafe", "XSTest unsafe contrast prompts",
                ("xstest/xstest_prompts.csv",), _xstest("unsafe")),
        SetInfo("harmbench", "HarmBench text behaviours, test split (context prepended)",
                ("harmbench/harmbench_behaviors_text_test.csv",), _harmbench),
        SetInfo("jbb_harmful", "JailbreakBench JBB-Behaviors, harmful",
                ("jbb-behaviors/harmful-behaviors.csv",), _jbb("harmful")),
        SetInfo("jbb_benign", "JailbreakBench JBB-Behaviors, benign twins",
                ("jbb-behaviors/benign-behaviors.csv",), _jbb("benign")),
        SetInfo("jbb_artifacts", "JailbreakBench attack artifacts: JBB harmful behaviours "
                "wrapped in jailbreaks (PAIR, random search, AIM, GCG)",
                ARTIFACT_FILES, _jbb_artifacts),
    ]  # fmt: skip
    for model in COMPLETION_MODELS:
        entries.append(
            SetInfo(
                f"xstest_completions_{model}",
                f"XSTest completions of {model}, human-labelled (partial refusal = refusal)",
                (f"xstest/model_completions/xstest_v2_completions_{model}.csv",),
                _completions(model),
            )
        )
    entries.append(
        SetInfo(
            "truthfulqa",
            "TruthfulQA questions (safe requests that provoke imitative falsehoods)",
            ("truthfulqa/TruthfulQA.csv",),
            _truthfulqa,
            agents=False,
        )
    )
    return {e.name: e for e in entries}


REGISTRY: dict[str, SetInfo] = _registry()
"""Every named evaluation set."""
REQUEST_SETS = (
    "xstest_safe", "xstest_unsafe", "harmbench", "jbb_harmful", "jbb_benign", "jbb_artifacts",
)  # fmt: skip
"""Sets of requests labelled harmful / safe (what ``oversight eval`` runs a model on)."""
RESPONSE_SETS = tuple(f"xstest_completions_{m}" for m in COMPLETION_MODELS)
"""Sets of responses labelled refusal / compliance (and their requests' harm)."""


def set_names() -> list[str]:
    return list(REGISTRY)


def load_set(
    name: str | Path,
    data_dir: str | Path | None = None,
    *,
    limit: int | None = None,
    seed: int = 0,
) -> LabelledSet:
    """A registered set by name, or a user's JSONL file by path; ``limit``: a seeded sample."""
    text = str(name)
    if text in REGISTRY:
        info = REGISTRY[text]
        root = Path(data_dir) if data_dir is not None else default_data_dir()
        examples = info.load(root)
        loaded = LabelledSet(info.name, str(root / info.files[0]), examples, info.description)
    elif text.endswith(".jsonl") or Path(text).exists():
        loaded = load_jsonl_set(Path(text))
    else:
        raise InputError(
            f"unknown evaluation set {text!r}: choose from {', '.join(REGISTRY)}, or give the "
            "path of a JSONL file of labelled examples"
        )
    if not loaded.examples:
        raise InputError(f"{loaded.source}: the set {loaded.name!r} has no examples")
    return loaded.sample(limit, seed)


def _label(value: Any, where: str) -> tuple[str, str]:
    """``(key, value)`` of a label given as ``label: <value>``."""
    word = _SYNONYMS.get(str(value).strip().lower(), str(value).strip().lower())
    for key, values in LABELS.items():
        if word in values:
            return key, word
    allowed = ", ".join(v for vs in LABELS.values() for v in vs)
    raise InputError(f"{where}: unknown label {value!r}; use one of {allowed}")


def load_jsonl_set(path: Path) -> LabelledSet:
    """A user's labelled set (see the module docstring for the format)."""
    if not path.exists():
        raise InputError(f"{path}: no such file (a JSONL set of labelled examples)")
    examples = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{where}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected an object with 'prompt' and a label")
            prompt = row.get("prompt")
            if prompt is None and isinstance(row.get("messages"), list):
                prompt = "\n".join(
                    str(m.get("content", "")) for m in row["messages"] if m.get("role") == "user"
                )
            if not isinstance(prompt, str) or not prompt.strip():
                raise InputError(f"{where}: missing 'prompt' (or user 'messages')")
            labels: dict[str, str] = {}
            if "label" in row:
                key, value = _label(row["label"], f"{where}: label")
                labels[key] = value
            for key in LABELS:
                if key in row:
                    k, value = _label(row[key], f"{where}: {key}")
                    if k != key:
                        raise InputError(
                            f"{where}: {key}={row[key]!r}; use one of {', '.join(LABELS[key])}"
                        )
                    labels[key] = value
            if not labels:
                raise InputError(
                    f'{where}: no label; add "harm": "harmful"|"safe" or '
                    '"refusal": "refusal"|"compliance" (with a "response")'
                )
            response = row.get("response")
            if "refusal" in labels and not isinstance(response, str):
                raise InputError(f"{where}: a 'refusal' label needs the 'response' it labels")
            examples.append(
                Example(str(row.get("id", f"{path.stem}-{number}")), prompt, labels, response)
            )
    if not examples:
        raise InputError(f"{path}: no examples (an empty set cannot be evaluated)")
    return LabelledSet(path.stem, str(path), examples, f"user set {path}")


def available_sets(data_dir: str | Path | None = None, *, agents: bool = False) -> list[str]:
    """Registered sets whose files exist under the data folder (``agents``: only those of
    ``oversight evaluate``'s default run)."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return [
        n
        for n, info in REGISTRY.items()
        if all((root / f).exists() for f in info.files) and (info.agents or not agents)
    ]


def evaluation_texts(
    data_dir: str | Path | None = None, names: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Every request of the registered sets found under the data folder, per set (HarmBench's
    contextual rows also without their context): what training data must never contain."""
    out: dict[str, list[str]] = {}
    for name in names or available_sets(data_dir):
        texts: list[str] = []
        for e in REGISTRY[name].load(Path(data_dir) if data_dir else default_data_dir()):
            texts.append(e.prompt)
            if e.core and e.core != e.prompt:
                texts.append(e.core)
        out[name] = list(dict.fromkeys(texts))
    return out
