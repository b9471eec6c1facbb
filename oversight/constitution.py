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

import difflib
import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeAlias

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
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


def _close(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


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
        ids = [p.id for p in self.principles]
        seen: set[str] = set()
        for index, pid in enumerate(ids):
            if pid in seen:
                raise ConfigError(
                    f"principles[{index}].id: duplicate principle id {pid!r}; "
                    "give every principle a unique id",
                    path=self.source,
                )
            seen.add(pid)
        rule_ids: set[str] = set()
        for index, rule in enumerate(self.rules):
            if rule.id in rule_ids:
                raise ConfigError(
                    f"rules[{index}].id: duplicate rule id {rule.id!r}; "
                    "give every rule a unique id",
                    path=self.source,
                )
            rule_ids.add(rule.id)

        def check(edges: Sequence[tuple[str, str]], key: str) -> None:
            for index, (winner, loser) in enumerate(edges):
                for pid in (winner, loser):
                    if pid not in seen:
                        raise UnknownPrincipleError(
                            f"{key}[{index}]: edge '{winner} > {loser}' names unknown principle "
                            f"{pid!r}{_close(pid, ids)}; define it under principles or fix the "
                            f"id (known: {', '.join(ids)})",
                            path=self.source,
                        )
                if winner == loser:
                    raise ConfigError(
                        f"{key}[{index}]: edge '{winner} > {loser}' points a principle at itself; "
                        "remove it",
                        path=self.source,
                    )

        check(self.priorities, "priorities")
        for index, rule in enumerate(self.rules):
            if not rule.add_edges and not rule.remove_edges:
                raise ConfigError(
                    f"rules[{index}] ({rule.id}): the rule has neither add_edges nor "
                    "remove_edges; give it one or delete the rule",
                    path=self.source,
                )
            check(rule.add_edges, f"rules[{index}] ({rule.id}).add_edges")
            check(rule.remove_edges, f"rules[{index}] ({rule.id}).remove_edges")
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
            f"unknown principle {id!r}{_close(id, self.ids)}; this constitution defines "
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
    """A new constitution with the overlay's changes applied (the input is unchanged)."""
    where = overlay.source or constitution.source

    def unknown(pid: str, key: str, ids: Iterable[str]) -> UnknownPrincipleError:
        ids = list(ids)
        return UnknownPrincipleError(
            f"{key}: overlay {overlay.name!r} names principle {pid!r}{_close(pid, ids)} which "
            f"constitution {constitution.name!r} does not define (it has {', '.join(ids)})",
            path=where,
        )

    if overlay.base is not None and overlay.base != constitution.name:
        raise ConfigError(
            f"base: overlay {overlay.name!r} is written for constitution {overlay.base!r}, "
            f"not {constitution.name!r}; apply it to that constitution or remove 'base'",
            path=where,
        )
    principles = list(constitution.principles)
    ids = [p.id for p in principles]
    for pid in overlay.remove_principles:
        if pid not in ids:
            raise unknown(pid, "remove_principles", ids)
    removed = set(overlay.remove_principles)
    principles = [p for p in principles if p.id not in removed]
    for index, p in enumerate(overlay.add_principles):
        if p.id in {q.id for q in principles}:
            raise ConfigError(
                f"add_principles[{index}].id: principle {p.id!r} already exists; change it with "
                "'weights'/'severities', or list it under remove_principles first to replace it",
                path=where,
            )
        principles.append(p)
    current = {p.id for p in principles}
    for key, changes in (("weights", overlay.weights), ("severities", overlay.severities)):
        for pid in changes:
            if pid not in current:
                raise unknown(pid, f"{key}.{pid}", [p.id for p in principles])
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

    priorities = [e for e in constitution.priorities if keep(e)]
    for index, edge in enumerate(overlay.remove_priorities):
        if edge not in priorities:
            raise ConfigError(
                f"remove_priorities[{index}]: edge '{edge[0]} > {edge[1]}' is not in constitution "
                f"{constitution.name!r}; remove this entry",
                path=where,
            )
        priorities.remove(edge)
    for edge in overlay.add_priorities:
        if edge not in priorities:
            priorities.append(edge)
    rules = []
    rule_ids = {r.id for r in constitution.rules}
    for index, rid in enumerate(overlay.remove_rules):
        if rid not in rule_ids:
            raise ConfigError(
                f"remove_rules[{index}]: constitution {constitution.name!r} has no rule {rid!r}"
                f"{_close(rid, rule_ids)}; remove this entry",
                path=where,
            )
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
        raise ConfigError(
            f"applying overlay {overlay.name!r} gives an invalid constitution: "
            f"{_describe_errors(err, None)}",
            path=where,
        ) from None


# --------------------------------------------------------------------------- loading


def _read_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """The parsed document and its node tree (for line numbers); ConfigError on bad YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "file not found; pass a path to a YAML file (or a name under the packaged "
            "constitutions/ folder, e.g. constitutions/default.yaml)",
            path=path,
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cannot read the file ({err}); it must be UTF-8 YAML", path=path
        ) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(
            f"{where}malformed YAML ({problem}); fix the syntax there (indentation, a missing "
            "colon, or an unquoted string containing ': ' or '{')",
            path=path,
        ) from None
    if data is None:
        raise ConfigError("the file is empty; it must hold a YAML mapping", path=path)
    _check_duplicate_keys(node, path)
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a YAML mapping (name:, principles:, ...), "
            f"not a {type(data).__name__}",
            path=path,
        )
    return data, node


def _check_duplicate_keys(node: yaml.Node | None, path: Path) -> None:
    """PyYAML keeps the last of two equal keys silently; a config file should not."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[Any] = set()
            for key, value in current.value:
                name = getattr(key, "value", None)
                if isinstance(name, str) and name in seen:
                    raise ConfigError(
                        f"line {key.start_mark.line + 1}: duplicate key {name!r} in one mapping; "
                        "keep only one of them",
                        path=path,
                    )
                seen.add(name)
                stack.append(value)
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest node along ``loc`` in a composed YAML tree."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            node = node.value[part] if 0 <= part < len(node.value) else None
        else:
            node = None
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _loc_name(loc: Sequence[int | str], data: Any = None) -> str:
    """``principles[2] (privacy).weight``: the key path, with the id of a listed item."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            item = data[part] if isinstance(data, list) and 0 <= part < len(data) else None
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                out += f" ({item['id']})"
            data = item
        else:
            out += f".{part}" if out else str(part)
            data = data.get(part) if isinstance(data, dict) else None
    return out or "(top level)"


def _describe_errors(err: ValidationError, node: yaml.Node | None, data: Any = None) -> str:
    parts = []
    for item in err.errors():
        loc = [p for p in item["loc"] if isinstance(p, int | str)]
        # pydantic adds the validator's name for annotated/function validators; drop non-keys.
        loc = [p for p in loc if not (isinstance(p, str) and p.startswith("function-"))]
        key = _loc_name(loc, data)
        line = _line_of(node, loc) if node is not None else None
        where = f"line {line}: " if line else ""
        kind = item["type"]
        if kind == "missing":
            msg = f"{where}{key}: required key is missing; add it"
        elif kind == "extra_forbidden":
            msg = f"{where}{key}: unknown key; remove it or check its spelling"
        else:
            text = item["msg"].removeprefix("Value error, ")
            text = text.replace("a valid tuple", "a list").replace("Tuple should", "List should")
            text = text.replace("a valid dictionary", "a mapping (key: value)")
            msg = f"{where}{key}: {text} (got {item.get('input')!r})"
        parts.append(msg)
    return "; ".join(parts)


def _validate(
    model: type[_Config], data: dict[str, Any], node: yaml.Node | None, path: Path
) -> Any:
    try:
        return model.model_validate({**data, "source": str(path)})
    except ValidationError as err:
        raise ConfigError(_describe_errors(err, node, data), path=path) from None


def load_overlay(path: str | Path, *, relative_to: str | Path | None = None) -> Overlay:
    """Load an overlay YAML file (ConfigError naming the file and key on any problem)."""
    resolved = resolve_config(path, relative_to=relative_to)
    data, node = _read_yaml(resolved)
    overlay: Overlay = _validate(Overlay, data, node, resolved)
    return overlay


def load_constitution(
    path: str | Path, overlays: Sequence[str | Path | Overlay] = ()
) -> Constitution:
    """Load a constitution YAML file and apply overlays (files or :class:`Overlay`) in order.

    Overlay paths are looked up as given, next to the constitution, then in the packaged data.
    """
    resolved = resolve_config(path)
    data, node = _read_yaml(resolved)
    constitution: Constitution = _validate(Constitution, data, node, resolved)
    for item in overlays:
        overlay = item if isinstance(item, Overlay) else load_overlay(item, relative_to=resolved)
        constitution = apply_overlay(constitution, overlay)
    return constitution


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
