"""Constitutions: principles, priority edges between them, conditional rules and overlays.

A constitution is a YAML file (``constitutions/default.yaml``)::

    name: default
    version: "1.0"
    description: ...
    principles:
      - id: harm
        version: "1.0"
        name: Avoid harmful instructions
        category: safety
        purpose: ...
        critique_prompt: "... {request} ... {response} ... Answer Yes or No."
        revision_prompt: "... {request} ... {response} ... {critique} ..."
        weight: 1.0
        severity: 0.9
        examples: [{request: ..., response: ..., critique: ..., revision: ...}]
        refusal_template: "I can't help with that, but ..."
    priorities:                 # winner > loser: the winner prevails when the two conflict
      - harm > helpfulness
    rules:                      # conditional rules: edges for one case's context
      - id: medical-honesty
        when: {domain: [medical, legal]}
        add_edges: [honesty > helpfulness]

An :class:`Overlay` (``constitutions/overlays/*.yaml``) adds, removes and re-weights principles,
edges and rules, for region-specific or user norms. Every error names the file and the key and
says how to fix it; a cycle in the priority edges (also one that appears only when some
conditional rules apply together) is rejected with :class:`~oversight.errors.PriorityCycleError`.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeAlias

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .config import (
    ConfigDocument,
    Problems,
    add_lines,
    describe_validation_error,
    did_you_mean,
    read_config,
)
from .errors import ConfigError, UnknownPrincipleError
from .paths import resolve_config
from .priority import check_acyclic

CRITIQUE_PLACEHOLDERS = frozenset({"request", "response"})
"""Placeholders a critique prompt may use."""
REVISION_PLACEHOLDERS = frozenset({"request", "response", "critique"})
"""Placeholders a revision prompt may use."""
REFUSAL_PLACEHOLDERS = frozenset({"request"})
"""Placeholders a refusal template may use."""

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


def _parse_edge(value: Any) -> Any:
    """Accept ``"a > b"`` as well as ``[a, b]`` for an edge (winner, loser)."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(">")]
        if len(parts) != 2 or not all(parts):
            raise ValueError(
                f"edge {value!r} must read 'winner > loser' (e.g. 'harm > helpfulness') "
                "or be a two-item list [winner, loser]"
            )
        return (parts[0], parts[1])
    return value


Edge: TypeAlias = Annotated[tuple[str, str], BeforeValidator(_parse_edge)]
"""A priority edge ``(winner, loser)``: the winner prevails over the loser."""


def _as_list(value: Any) -> Any:
    """A scalar condition value means a one-item list; numbers are compared as text."""
    if not isinstance(value, Mapping):
        return value
    out: dict[Any, Any] = {}
    for key, allowed in value.items():
        items = allowed if isinstance(allowed, list | tuple) else [allowed]
        out[key] = [str(v) if isinstance(v, int | float) else v for v in items]
    return out


def _placeholders(template: str) -> set[str]:
    """Names of the ``{placeholders}`` of a ``str.format`` template (ValueError if malformed)."""
    names: set[str] = set()
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name is not None:
            names.add(field_name)
    return names


def _check_template(
    template: str, allowed: frozenset[str], what: str, required: str | None = None
) -> str:
    try:
        names = _placeholders(template)
    except ValueError as err:
        raise ValueError(
            f"{what} is not a valid template ({err}); write literal braces as '{{{{' and '}}}}'"
        ) from None
    unknown = sorted(names - allowed)
    if unknown:
        raise ValueError(
            f"{what} uses unknown placeholder(s) {', '.join('{' + n + '}' for n in unknown)}; "
            f"allowed: {', '.join('{' + n + '}' for n in sorted(allowed))} "
            "(write literal braces as '{{' and '}}')"
        )
    if required is not None and required not in names:
        raise ValueError(
            f"{what} never shows the model the {required} to judge; put {{{required}}} in it"
        )
    return template


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FewShotExample(_Config):
    """A worked example of a principle: a bad response, its critique and the revised response."""

    request: str
    """The user's request."""
    response: str
    """A response that violates the principle."""
    critique: str
    """The critique of that response under the principle."""
    revision: str
    """The response rewritten to satisfy the principle."""


class HarmCategory(_Config):
    """Guidance for one kind of harmful request: what to decline and where to point instead.

    Revisions use it to refuse *or redirect* per request (decline the harmful part, answer the
    safe part, point to the legitimate path) instead of one refusal sentence for everything.
    """

    id: str = Field(pattern=_ID_PATTERN)
    """Stable identifier (``cyber_intrusion``), recorded on critiques and revisions."""
    name: str
    """Human-readable name (``Cyber intrusion``)."""
    description: str
    """What requests of this kind ask for."""
    keywords: tuple[str, ...] = ()
    """Lower-case words or phrases that suggest the category (matched on word boundaries)."""
    decline: str
    """What a revision must not provide for such a request."""
    redirect: str
    """The legitimate path a revision offers instead (one or two sentences, user-facing)."""
    principles: tuple[str, ...] = ("harm",)
    """Principles whose violations this guidance helps revise."""
    examples: tuple[FewShotExample, ...] = ()
    """Worked decline-and-redirect revisions for the reviser's few-shot prompt."""


class Principle(_Config):
    """One principle of a constitution: what it protects and how agents check and revise for it."""

    id: str = Field(pattern=_ID_PATTERN)
    """Stable identifier (``harm``), used in edges, rules, critiques and provenance."""
    version: str
    """Version of this principle's wording; recorded with every critique and training row."""
    name: str
    """Short human-readable name (``Avoid harmful instructions``)."""
    category: str
    """Area the principle belongs to (``safety``, ``security``, ``honesty``, ...)."""
    purpose: str
    """One or two sentences on what the principle protects and why."""
    critique_prompt: str
    """Template asking whether a response violates the principle, ending in a Yes/No question;
    placeholders ``{request}`` and ``{response}`` (required)."""
    revision_prompt: str
    """Template asking for a rewrite that satisfies the principle; placeholders ``{request}``,
    ``{response}`` (required) and ``{critique}``."""
    weight: float = Field(default=1.0, ge=0.0)
    """Importance in weighted scoring (cost = weight x severity x confidence)."""
    severity: float = Field(default=0.5, ge=0.0, le=1.0)
    """Default severity of a violation, used when a critic reports none."""
    examples: tuple[FewShotExample, ...] = ()
    """Few-shot examples for critics and the reviser."""
    refusal_template: str | None = None
    """A brief refusal that redirects to something safe; the reviser's fallback when no model
    revision satisfies the principle. Placeholder ``{request}`` allowed."""
    guidance: str = ""
    """What an answer that satisfies the principle does (one sentence); critiques use it as
    their suggestion. Defaults to the principle's purpose."""

    @field_validator("critique_prompt")
    @classmethod
    def _critique(cls, value: str) -> str:
        return _check_template(value, CRITIQUE_PLACEHOLDERS, "critique_prompt", "response")

    @field_validator("revision_prompt")
    @classmethod
    def _revision(cls, value: str) -> str:
        return _check_template(value, REVISION_PLACEHOLDERS, "revision_prompt", "response")

    @field_validator("refusal_template")
    @classmethod
    def _refusal(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return _check_template(value, REFUSAL_PLACEHOLDERS, "refusal_template")

    def render_critique(self, request: str, response: str) -> str:
        """The critique prompt for one request/response pair."""
        return self.critique_prompt.format(request=request, response=response)

    def render_revision(self, request: str, response: str, critique: str = "") -> str:
        """The revision prompt for one request/response pair and its critique."""
        return self.revision_prompt.format(request=request, response=response, critique=critique)

    def render_refusal(self, request: str = "") -> str | None:
        """The refusal template filled in, or None when the principle has none."""
        if self.refusal_template is None:
            return None
        return self.refusal_template.format(request=request)


class ConditionalRule(_Config):
    """Edges that apply only in some contexts (e.g. honesty over helpfulness in medicine)."""

    id: str = Field(pattern=_ID_PATTERN)
    """Stable identifier, recorded in a Resolution when the rule applied."""
    description: str = ""
    """What the rule is for, in a sentence."""
    when: Annotated[dict[str, list[str]], BeforeValidator(_as_list)] = Field(min_length=1)
    """Context key -> allowed values; the rule applies when every key's value is one of its
    allowed values (``{domain: [medical, legal]}``)."""
    add_edges: tuple[Edge, ...] = ()
    """Edges ``winner > loser`` added while the rule applies."""
    remove_edges: tuple[Edge, ...] = ()
    """Edges of the base constitution removed while the rule applies."""

    def applies(self, context: Mapping[str, Any]) -> bool:
        """Whether the context satisfies every condition of the rule."""
        for key, allowed in self.when.items():
            if key not in context or str(context[key]) not in allowed:
                return False
        return True


class Constitution(_Config):
    """A set of principles, the priority edges between them and conditional rules."""

    name: str
    """Name of the constitution (``default``)."""
    version: str = "1"
    """Version of the constitution as a whole."""
    description: str = ""
    """What the constitution is for."""
    principles: tuple[Principle, ...] = Field(min_length=1)
    """The principles, in a stable order (the index order of the priority graph's arrays)."""
    priorities: tuple[Edge, ...] = ()
    """Edges ``(winner, loser)``: the winner prevails when the two principles conflict. Pairs
    without a path either way are incomparable and go to weighted scoring."""
    rules: tuple[ConditionalRule, ...] = ()
    """Conditional rules adding or removing edges for some contexts."""
    categories: tuple[HarmCategory, ...] = ()
    """Per-category refuse-or-redirect guidance for harmful requests (weapons, cyber intrusion,
    drugs, self-harm, ...), used by critics and the reviser."""
    overlays: tuple[str, ...] = ()
    """Names of the overlays applied to the base constitution, in order."""
    source: str | None = None
    """The file the constitution was loaded from (named in errors)."""

    @model_validator(mode="after")
    def _check_references(self) -> Constitution:
        problems = Problems(self, path=self.source)
        ids = [p.id for p in self.principles]
        seen: set[str] = set()
        for index, pid in enumerate(ids):
            if pid in seen:
                problems.add(
                    ("principles", index, "id"),
                    f"duplicate principle id {pid!r}; give every principle a unique id",
                )
            seen.add(pid)
        rule_ids: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in rule_ids:
                problems.add(
                    ("rules", index, "id"),
                    f"duplicate rule id {rule.id!r}; give every rule a unique id",
                )
            rule_ids.add(rule.id)

        def check(edges: Sequence[tuple[str, str]], loc: tuple[str | int, ...]) -> None:
            for index, (winner, loser) in enumerate(edges):
                for pid in dict.fromkeys((winner, loser)):
                    if pid not in seen:
                        problems.add(
                            (*loc, index),
                            f"edge '{winner} > {loser}' names unknown principle {pid!r}"
                            f"{did_you_mean(pid, ids)}; define it under principles or fix the "
                            f"id (known: {', '.join(ids)})",
                            UnknownPrincipleError,
                        )
                if winner == loser:
                    problems.add(
                        (*loc, index),
                        f"edge '{winner} > {loser}' points a principle at itself; remove it",
                    )

        check(self.priorities, ("priorities",))
        for index, rule in enumerate(self.rules):
            if not rule.add_edges and not rule.remove_edges:
                problems.add(
                    ("rules", index),
                    "the rule has neither add_edges nor remove_edges; give it one or delete "
                    "the rule",
                )
            check(rule.add_edges, ("rules", index, "add_edges"))
            check(rule.remove_edges, ("rules", index, "remove_edges"))
        problems.raise_if_any()
        check_acyclic(self)
        return self

    @property
    def ids(self) -> list[str]:
        """Principle ids in order."""
        return [p.id for p in self.principles]

    def category(self, id: str) -> HarmCategory | None:
        """The harm category with this id, or None."""
        return next((c for c in self.categories if c.id == id), None)

    def principle(self, id: str) -> Principle:
        """The principle with this id (UnknownPrincipleError otherwise)."""
        for p in self.principles:
            if p.id == id:
                return p
        raise UnknownPrincipleError(
            f"unknown principle {id!r}{did_you_mean(id, self.ids)}; this constitution defines "
            f"{', '.join(self.ids)}",
            path=self.source,
        )

    def versions(self) -> dict[str, str]:
        """Principle id -> version, for provenance."""
        return {p.id: p.version for p in self.principles}


class Overlay(_Config):
    """Changes to a constitution for a region, an organisation or a user.

    Applied in this order: remove principles (and every edge that names them), add principles,
    set weights and severities, remove edges, add edges, remove rules, add rules.
    """

    name: str
    """Name of the overlay (``eu-gdpr``); recorded in :attr:`Constitution.overlays`."""
    description: str = ""
    """What the overlay is for."""
    base: str | None = None
    """Name of the constitution the overlay was written for; when set, applying it to another
    constitution is an error."""
    remove_principles: tuple[str, ...] = ()
    """Principle ids to drop, with the edges and rule edges that name them."""
    add_principles: tuple[Principle, ...] = ()
    """New principles (their ids must not exist yet)."""
    weights: dict[str, float] = Field(default_factory=dict)
    """Principle id -> new weight."""
    severities: dict[str, float] = Field(default_factory=dict)
    """Principle id -> new default severity."""
    remove_priorities: tuple[Edge, ...] = ()
    """Edges ``winner > loser`` to drop (each must exist)."""
    add_priorities: tuple[Edge, ...] = ()
    """Edges ``winner > loser`` to add."""
    remove_rules: tuple[str, ...] = ()
    """Ids of conditional rules to drop."""
    add_rules: tuple[ConditionalRule, ...] = ()
    """Conditional rules to add."""
    source: str | None = None
    """The file the overlay was loaded from (named in errors)."""
    provenance: dict[str, Any] = Field(default_factory=dict)
    """Where the overlay's changes came from (a stakeholder vote tally, the paragraphs of a
    policy document); recorded for people, never read by the pipeline."""

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if v < 0}
        if bad:
            raise ValueError(f"weights must be >= 0, got {bad}")
        return value

    @field_validator("severities")
    @classmethod
    def _severities(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"severities must lie in [0, 1], got {bad}")
        return value


def apply_overlay(constitution: Constitution, overlay: Overlay) -> Constitution:
    """A new constitution with the overlay's changes applied (the input is unchanged).

    Every problem of the overlay (unknown principles, edges or rules it names) is reported at
    once, as one :class:`ConfigError` naming the overlay's file.
    """
    where = overlay.source or constitution.source
    problems = Problems(overlay, path=where)

    def unknown(pid: str, loc: tuple[str | int, ...], ids: Iterable[str]) -> None:
        ids = list(ids)
        problems.add(
            loc,
            f"overlay {overlay.name!r} names principle {pid!r}{did_you_mean(pid, ids)} which "
            f"constitution {constitution.name!r} does not define (it has {', '.join(ids)})",
            UnknownPrincipleError,
        )

    if overlay.base is not None and overlay.base != constitution.name:
        raise ConfigError(
            f"base: overlay {overlay.name!r} is written for constitution {overlay.base!r}, "
            f"not {constitution.name!r}; apply it to that constitution or remove 'base'",
            path=where,
        )
    principles = list(constitution.principles)
    ids = [p.id for p in principles]
    for index, pid in enumerate(overlay.remove_principles):
        if pid not in ids:
            unknown(pid, ("remove_principles", index), ids)
    removed = set(overlay.remove_principles)
    principles = [p for p in principles if p.id not in removed]
    for index, p in enumerate(overlay.add_principles):
        if p.id in {q.id for q in principles}:
            problems.add(
                ("add_principles", index, "id"),
                f"principle {p.id!r} already exists; change it with 'weights'/'severities', or "
                "list it under remove_principles first to replace it",
            )
        else:
            principles.append(p)
    current = [p.id for p in principles]
    for key, changes in (("weights", overlay.weights), ("severities", overlay.severities)):
        for pid in changes:
            if pid not in current:
                unknown(pid, (key, pid), current)
    principles = [
        p.model_copy(
            update={
                "weight": overlay.weights.get(p.id, p.weight),
                "severity": overlay.severities.get(p.id, p.severity),
            }
        )
        for p in principles
    ]

    def keep(edge: tuple[str, str]) -> bool:
        return edge[0] not in removed and edge[1] not in removed

    def check_names(edges: Sequence[tuple[str, str]], loc: tuple[str | int, ...]) -> None:
        for index, edge in enumerate(edges):
            for pid in dict.fromkeys(edge):
                if pid not in current:
                    unknown(pid, (*loc, index), current)

    priorities = [e for e in constitution.priorities if keep(e)]
    for index, edge in enumerate(overlay.remove_priorities):
        if edge not in priorities:
            problems.add(
                ("remove_priorities", index),
                f"edge '{edge[0]} > {edge[1]}' is not in constitution {constitution.name!r}; "
                "remove this entry",
            )
        else:
            priorities.remove(edge)
    check_names(overlay.add_priorities, ("add_priorities",))
    for edge in overlay.add_priorities:
        if edge not in priorities:
            priorities.append(edge)
    rules = []
    rule_ids = [r.id for r in constitution.rules]
    for index, rid in enumerate(overlay.remove_rules):
        if rid not in rule_ids:
            problems.add(
                ("remove_rules", index),
                f"constitution {constitution.name!r} has no rule {rid!r}"
                f"{did_you_mean(rid, rule_ids)}; remove this entry",
            )
    kept_ids = [rid for rid in rule_ids if rid not in overlay.remove_rules]
    for index, rule in enumerate(overlay.add_rules):
        if rule.id in kept_ids:
            problems.add(
                ("add_rules", index, "id"),
                f"rule {rule.id!r} already exists; list it under remove_rules first to replace it",
            )
        check_names(rule.add_edges, ("add_rules", index, "add_edges"))
        check_names(rule.remove_edges, ("add_rules", index, "remove_edges"))
    problems.raise_if_any()
    for rule in constitution.rules:
        if rule.id in overlay.remove_rules:
            continue
        rule = rule.model_copy(
            update={
                "add_edges": tuple(e for e in rule.add_edges if keep(e)),
                "remove_edges": tuple(e for e in rule.remove_edges if keep(e)),
            }
        )
        if rule.add_edges or rule.remove_edges:
            rules.append(rule)
    rules.extend(overlay.add_rules)
    try:
        return Constitution(
            name=constitution.name,
            version=constitution.version,
            description=constitution.description,
            principles=tuple(principles),
            priorities=tuple(priorities),
            rules=tuple(rules),
            overlays=(*constitution.overlays, overlay.name),
            source=where,
        )
    except ValidationError as err:  # e.g. every principle removed
        found = describe_validation_error(err, model=Constitution)
        raise ConfigError(
            f"applying overlay {overlay.name!r} gives an invalid constitution: "
            + "; ".join(str(p) for p in found),
            path=where,
        ) from None


# --------------------------------------------------------------------------- loading


def load_overlay(path: str | Path, *, relative_to: str | Path | None = None) -> Overlay:
    """Load an overlay YAML file (ConfigError naming the file and key on any problem)."""
    resolved = resolve_config(path, relative_to=relative_to)
    return _read(resolved, "overlay").validate(Overlay)


def load_constitution(
    path: str | Path, overlays: Sequence[str | Path | Overlay] = ()
) -> Constitution:
    """Load a constitution YAML file and apply overlays (files or :class:`Overlay`) in order.

    Overlay paths are looked up as given, next to the constitution, then in the packaged data.
    """
    resolved = resolve_config(path)
    constitution = _read(resolved, "constitution").validate(Constitution)
    for item in overlays:
        overlay = item if isinstance(item, Overlay) else load_overlay(item, relative_to=resolved)
        try:
            constitution = apply_overlay(constitution, overlay)
        except ConfigError as err:  # the overlay's problems, with their lines in its file
            raise add_lines(err) from None
    return constitution


def _read(path: Path, what: str) -> ConfigDocument:
    return read_config(path, what=what, example=f"constitutions/{_EXAMPLES[what]}")


_EXAMPLES = {"constitution": "default.yaml", "overlay": "overlays/eu-gdpr.yaml"}


# --------------------------------------------------------------------------- Anthropic's CAI

_CAI_CONVERSATION = "Human: {request}\n\nAssistant: {response}"
_CAI_QUESTION = "\n\nDoes the assistant's response do any of this? Answer Yes or No."
_CAI_FIELD = re.compile(r"\n\n(CritiqueRequest|Critique|RevisionRequest|Revision):[ ]?")


def _cai_text(value: str, label: str) -> str:
    """The request text of ``"\\n\\nCritiqueRequest: ...\\n\\nCritique:"``."""
    text = value.strip()
    text = text.removeprefix(f"{label}:").strip()
    for suffix in ("Critique:", "Revision:"):
        text = text.removesuffix(suffix).strip()
    return text


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _cai_example(text: str) -> FewShotExample | None:
    """Parse one few-shot dialogue of ``CritiqueRevisionFewShotPrompts.json``."""
    pieces = _CAI_FIELD.split(text)
    if len(pieces) < 9:
        return None
    dialogue = pieces[0]
    fields = dict(zip(pieces[1::2], pieces[2::2], strict=False))
    cut = dialogue.rfind("\n\nAssistant:")
    if cut < 0:
        return None
    request = dialogue[:cut].strip().removeprefix("Human:").strip()
    response = dialogue[cut + len("\n\nAssistant:") :].strip()
    revision = fields.get("Revision", "").strip()
    revision = revision.removesuffix("Human:").strip()
    return FewShotExample(
        request=request,
        response=response,
        critique=fields.get("Critique", "").strip(),
        revision=revision,
    )


def load_cai_principles(path: str | Path) -> Constitution:
    """A constitution from Anthropic's published CAI prompts (Bai et al., 2022).

    ``path`` is the ``prompts/`` folder of github.com/anthropics/ConstitutionalHarmlessnessPaper
    or its ``CritiqueRevisionInstructions.json``. Each of the 16 critique/revision pairs becomes a
    principle (``harmful0`` ... ``harmful15``, category ``harmlessness``, equal weights, no
    priority edges, so conflicts go to weighted scoring). The critique prompt is the published
    CritiqueRequest after a ``Human:/Assistant:`` transcript, followed by a Yes/No question (our
    addition, so critics can score it); the revision prompt is the published format with the
    critique filled in. The few-shot dialogues of ``CritiqueRevisionFewShotPrompts.json``, when
    present beside it, become every principle's examples.
    """
    root = Path(path)
    file = root / "CritiqueRevisionInstructions.json" if root.is_dir() else root
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            "file not found; pass the prompts/ folder of Anthropic's "
            "ConstitutionalHarmlessnessPaper or its CritiqueRevisionInstructions.json",
            path=file,
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read CAI principles as JSON ({err})", path=file) from None
    if not isinstance(data, dict) or not data:
        raise ConfigError(
            "expected a JSON object {name: {prompt: [...], edit_request: ...}} as in "
            "CritiqueRevisionInstructions.json",
            path=file,
        )
    examples: tuple[FewShotExample, ...] = ()
    few_shot = file.parent / "CritiqueRevisionFewShotPrompts.json"
    if few_shot.exists():
        try:
            dialogues = json.loads(few_shot.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read few-shot prompts ({err})", path=few_shot) from None
        parsed = [_cai_example(d) for d in dialogues if isinstance(d, str)]
        examples = tuple(e for e in parsed if e is not None)
    principles = []
    for key, entry in data.items():
        try:
            prompts = entry["prompt"]
            critique_request = _cai_text(
                prompts[0] if isinstance(prompts, list) else prompts, "CritiqueRequest"
            )
            revision_request = _cai_text(entry["edit_request"], "RevisionRequest")
        except (KeyError, IndexError, TypeError):
            raise ConfigError(
                f"{key}: expected {{'prompt': ['...CritiqueRequest: ...'], 'edit_request': "
                "'...RevisionRequest: ...'}",
                path=file,
            ) from None
        conversation = _CAI_CONVERSATION
        principles.append(
            Principle(
                id=key,
                version="cai-2022",
                name=f"CAI {key}",
                category="harmlessness",
                purpose=critique_request,
                critique_prompt=(
                    f"{conversation}\n\nCritiqueRequest: {_escape(critique_request)}{_CAI_QUESTION}"
                ),
                revision_prompt=(
                    f"{conversation}\n\nCritiqueRequest: {_escape(critique_request)}\n\n"
                    f"Critique: {{critique}}\n\nRevisionRequest: {_escape(revision_request)}"
                    "\n\nRevision:"
                ),
                weight=1.0,
                severity=0.5,
                examples=examples,
            )
        )
    return Constitution(
        name="anthropic-cai",
        version="2022-12",
        description=(
            "The 16 critique/revision principles of Constitutional AI: Harmlessness from AI "
            "Feedback (Bai et al., 2022), as published by Anthropic."
        ),
        principles=tuple(principles),
        source=str(file),
    )


__all__ = [
    "CRITIQUE_PLACEHOLDERS",
    "REFUSAL_PLACEHOLDERS",
    "REVISION_PLACEHOLDERS",
    "ConditionalRule",
    "Constitution",
    "Edge",
    "FewShotExample",
    "HarmCategory",
    "Overlay",
    "Principle",
    "apply_overlay",
    "load_cai_principles",
    "load_constitution",
    "load_overlay",
]
