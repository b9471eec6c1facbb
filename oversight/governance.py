"""Per-request constitutions: a prompt's context picks the constitution and overlays that decide it.

A hierarchy may list ``select`` entries; each names the context it is for (``when``, as in a
conditional rule) and the overlays (or a whole other constitution) that apply then::

    contexts:                  # optional: the values each context key may take (checked per prompt)
      region: [eu, us, global]
      user: [adult, minor]
      surface: [chat, tutor, api]
    select:
      - id: eu-users
        when: {region: [eu]}
        overlays: [constitutions/overlays/eu-gdpr.yaml]
      - id: school-tutor
        when: {surface: [tutor]}
        overlays: [constitutions/overlays/children-education.yaml]

Every entry whose ``when`` matches applies, in file order, after the hierarchy's own overlays;
an entry with ``constitution`` replaces the base (the hierarchy's overlays then do not apply).
So one run can decide its episodes under several constitutions. :class:`ConstitutionSet` builds
each combination once (a :class:`Variant`: the constitution, its priority graph and compiled
decision core) and checks, when the hierarchy loads, every combination whose conditions can hold
together, so a cycle or an unknown principle shows up before any model runs.

Each episode journals a :class:`~oversight.messages.ConstitutionApplied` naming the constitution,
its version, overlays, the entries that selected it and a digest; export rows, ``oversight
explain`` and ``oversight replay`` cite it. :func:`diff_constitutions` compares two
constitutions principle by principle and edge by edge.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, cast

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .constitution import ConditionalRule, Constitution, Overlay, _as_list, apply_overlay
from .errors import ConfigError
from .messages import ConstitutionApplied, Prompt
from .priority import MAX_RULE_COMBINATIONS, PriorityGraph, _joint_combinations

if TYPE_CHECKING:
    from .consensus import CompiledCore
    from .escalation.policy import EscalationPolicy
    from .prompts import PromptProblem

CONTEXT_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
"""What a context key looks like (``region``, ``user``, ``surface``, ``domain``)."""
CONTEXT_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:/+-]{0,127}$")
"""What a context value looks like (``eu``, ``minor``, ``tutor``, ``red-team-lab``)."""
CONTEXT_SHORTHANDS = ("region", "user", "surface")
"""Prompt-file keys that may be given at the top level of a JSONL line instead of inside
``context`` (``{"prompt": ..., "region": "eu", "user": "minor", "surface": "tutor"}``)."""


class Selector(BaseModel):
    """One ``select`` entry of a hierarchy: the overlays (or constitution) for some contexts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Stable identifier, recorded on every episode it selected."""
    description: str = ""
    """What the entry is for."""
    when: Annotated[dict[str, list[str]], BeforeValidator(_as_list)] = Field(min_length=1)
    """Context key -> allowed values; the entry applies when every key's value is allowed."""
    constitution: str | None = None
    """A constitution file that replaces the hierarchy's (its overlays then do not apply)."""
    overlays: tuple[str, ...] = ()
    """Overlay files applied when the entry matches, in order."""

    def applies(self, context: Mapping[str, Any]) -> bool:
        """Whether the context satisfies every condition of the entry."""
        return all(str(context.get(k)) in allowed for k, allowed in self.when.items())


@dataclass(frozen=True)
class LoadedSelector:
    """A :class:`Selector` with its files loaded."""

    selector: Selector
    constitution: Constitution | None
    overlays: tuple[Overlay, ...]


def digest(constitution: Constitution) -> str:
    """A short hash of what decides: principle ids, versions, weights and severities, the edges
    and the conditional rules (prompt wording is covered by the principles' versions)."""
    body = {
        "principles": [[p.id, p.version, p.weight, p.severity] for p in constitution.principles],
        "priorities": [list(e) for e in constitution.priorities],
        "rules": [r.model_dump(mode="json", exclude={"description"}) for r in constitution.rules],
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass
class Variant:
    """One constitution in force: what a set of matching ``select`` entries gives."""

    constitution: Constitution
    graph: PriorityGraph
    core: CompiledCore
    selected_by: tuple[str, ...] = ()
    severity: dict[str, float] = field(default_factory=dict)
    """Principle id -> default severity (for findings that report none)."""
    digest: str = ""

    def record(self, context: Mapping[str, Any] | None = None) -> ConstitutionApplied:
        """The journal record of this variant deciding an episode with ``context``."""
        c = self.constitution
        return ConstitutionApplied(
            name=c.name,
            version=c.version,
            overlays=c.overlays,
            selected_by=self.selected_by,
            principles=c.versions(),
            conditional_rules=tuple(self.graph.context_key(context)),
            digest=self.digest,
        )


def make_variant(
    constitution: Constitution, policy: EscalationPolicy, selected_by: Sequence[str] = ()
) -> Variant:
    """The priority graph and compiled core of one constitution."""
    from .consensus import CompiledCore

    graph = PriorityGraph(constitution)
    return Variant(
        constitution=constitution,
        graph=graph,
        core=CompiledCore.from_config(graph, policy),
        selected_by=tuple(selected_by),
        severity={p.id: float(p.severity) for p in constitution.principles},
        digest=digest(constitution),
    )


class ConstitutionSet:
    """The constitutions a hierarchy may apply, one :class:`Variant` per matching combination."""

    def __init__(
        self,
        base: Constitution,
        policy: EscalationPolicy,
        selectors: Sequence[LoadedSelector] = (),
        contexts: Mapping[str, Sequence[str]] | None = None,
        *,
        source: str | None = None,
    ) -> None:
        self.base = base
        self.policy = policy
        self.selectors = list(selectors)
        self.contexts = {k: list(v) for k, v in (contexts or {}).items()}
        """Context key -> the values it may take (keys not listed are free)."""
        self.source = source
        self._variants: dict[tuple[int, ...], Variant] = {}

    def __repr__(self) -> str:
        return f"ConstitutionSet({self.base.name!r}, selectors={len(self.selectors)})"

    @property
    def default(self) -> Variant:
        """The variant of a prompt that no entry selects."""
        return self._variant(())

    def matching(self, context: Mapping[str, Any] | None) -> tuple[int, ...]:
        """Indices of the entries that apply to a context, in file order."""
        if not context:
            return ()
        return tuple(i for i, s in enumerate(self.selectors) if s.selector.applies(context))

    def for_context(self, context: Mapping[str, Any] | None) -> Variant:
        """The variant that decides an episode with this context."""
        return self._variant(self.matching(context))

    def _variant(self, key: tuple[int, ...]) -> Variant:
        cached = self._variants.get(key)
        if cached is not None:
            return cached
        chosen = [self.selectors[i] for i in key]
        replacing = [s for s in chosen if s.constitution is not None]
        if len(replacing) > 1:
            names = ", ".join(s.selector.id for s in replacing)
            raise ConfigError(
                f"select: entries {names} can match the same prompt and each replaces the "
                "constitution; make their `when` conditions exclusive or give only one of them "
                "a `constitution`",
                path=self.source,
            )
        constitution = replacing[0].constitution if replacing else self.base
        assert constitution is not None
        for s in chosen:
            for overlay in s.overlays:
                try:
                    constitution = apply_overlay(constitution, overlay)
                except ConfigError as err:
                    raise ConfigError(
                        f"select: entry {s.selector.id!r}: {err.detail}", path=self.source
                    ) from None
        variant = make_variant(constitution, self.policy, [s.selector.id for s in chosen])
        self._variants[key] = variant
        return variant

    def variants(self) -> list[Variant]:
        """Every variant any context can select (the default first), built and checked now.

        Raises :class:`ConfigError` naming the entries when a combination is invalid (an overlay
        that does not fit, a priority cycle)."""
        keys: list[tuple[int, ...]] = [()]
        whens = cast(list[ConditionalRule], [s.selector for s in self.selectors])  # reads .when
        combos = _joint_combinations(whens, MAX_RULE_COMBINATIONS) if whens else []
        if combos is None:
            raise ConfigError(
                f"select: more than {MAX_RULE_COMBINATIONS} combinations of entries can match "
                "one prompt; make the `when` conditions more exclusive",
                path=self.source,
            )
        keys += [tuple(c) for c in combos]
        out = []
        for key in keys:
            try:
                out.append(self._variant(key))
            except ConfigError as err:
                if key and "select: " not in err.detail:
                    names = ", ".join(self.selectors[i].selector.id for i in key)
                    raise ConfigError(
                        f"select: when entries {names} apply together: {err.detail}",
                        path=self.source,
                    ) from None
                raise
        return out

    def check_prompt(self, prompt: Prompt) -> Prompt | PromptProblem:
        """The prompt, or a :class:`~oversight.prompts.PromptProblem` when its context gives a
        value the hierarchy's ``contexts`` does not allow (a typo would otherwise silently fall
        back to the default constitution)."""
        from .prompts import PromptProblem

        for key, allowed in self.contexts.items():
            value = prompt.context.get(key)
            if value is not None and value not in allowed:
                where = f" ({self.source})" if self.source else ""
                return PromptProblem(
                    prompt.prompt_id,
                    f"{prompt.prompt_id}: context {key}={value!r} is not one of "
                    f"{', '.join(allowed)}, the values the hierarchy{where} declares under "
                    f"`contexts`; fix the prompt or add the value there",
                )
        return prompt


def check_context(context: Any, where: str) -> dict[str, str] | str:
    """A prompt line's context as ``{key: value}`` strings, or a message saying what is wrong.

    Keys match :data:`CONTEXT_KEY`; values are strings, numbers or booleans matching
    :data:`CONTEXT_VALUE` (no nested objects or lists: a rule compares one value)."""
    if context is None:
        return {}
    if not isinstance(context, dict):
        kind = type(context).__name__
        return f"{where}: 'context' must be an object of key: value facts, got {kind}"
    out: dict[str, str] = {}
    for key, value in context.items():
        if not CONTEXT_KEY.match(str(key)):
            return (
                f"{where}: context key {str(key)[:40]!r} must start with a letter and use "
                "letters, digits, '_', '.' or '-' (at most 64 characters)"
            )
        if isinstance(value, bool):
            value = "true" if value else "false"
        if isinstance(value, dict | list | tuple) or value is None:
            return (
                f"{where}: context {key}: expected one value (a string), got "
                f"{type(value).__name__ if value is not None else 'null'}"
            )
        text = str(value)
        if not CONTEXT_VALUE.match(text):
            return (
                f"{where}: context {key}={text[:40]!r} must start with a letter or digit and "
                "use letters, digits, spaces or _.:/+- (at most 128 characters)"
            )
        out[str(key)] = text
    return out


# --------------------------------------------------------------------------- diff


def _principle_changes(a: Any, b: Any) -> dict[str, list[Any]]:
    changes: dict[str, list[Any]] = {}
    for name in (
        "version", "name", "category", "weight", "severity", "purpose", "critique_prompt",
        "revision_prompt", "refusal_template", "guidance",
    ):  # fmt: skip
        old, new = getattr(a, name), getattr(b, name)
        if old != new:
            short = name in ("version", "name", "category", "weight", "severity")
            changes[name] = [old, new] if short else ["changed", "changed"]
    return changes


def diff_constitutions(a: Constitution, b: Constitution) -> dict[str, Any]:
    """What changes from ``a`` to ``b``: principles added, removed and changed (field by field;
    prompt texts as "changed"), priority edges added and removed, conditional rules added,
    removed and changed, and each side's name, version, overlays and digest."""
    pa, pb = {p.id: p for p in a.principles}, {p.id: p for p in b.principles}
    ea, eb = set(a.priorities), set(b.priorities)
    ra, rb = {r.id: r for r in a.rules}, {r.id: r for r in b.rules}

    def side(c: Constitution) -> dict[str, Any]:
        return {
            "name": c.name,
            "version": c.version,
            "overlays": list(c.overlays),
            "source": c.source,
            "digest": digest(c),
        }

    changed_rules = {}
    for rid in sorted(set(ra) & set(rb)):
        old, new = ra[rid], rb[rid]
        if old.model_dump(exclude={"description"}) != new.model_dump(exclude={"description"}):
            changed_rules[rid] = {
                "when": [old.when, new.when],
                "add_edges": [
                    [f"{w} > {lo}" for w, lo in old.add_edges],
                    [f"{w} > {lo}" for w, lo in new.add_edges],
                ],
                "remove_edges": [
                    [f"{w} > {lo}" for w, lo in old.remove_edges],
                    [f"{w} > {lo}" for w, lo in new.remove_edges],
                ],
            }
    return {
        "a": side(a),
        "b": side(b),
        "principles_added": [p for p in pb if p not in pa],
        "principles_removed": [p for p in pa if p not in pb],
        "principles_changed": {
            pid: ch for pid in pa if pid in pb and (ch := _principle_changes(pa[pid], pb[pid]))
        },
        "edges_added": [f"{w} > {lo}" for w, lo in b.priorities if (w, lo) not in ea],
        "edges_removed": [f"{w} > {lo}" for w, lo in a.priorities if (w, lo) not in eb],
        "rules_added": [r for r in rb if r not in ra],
        "rules_removed": [r for r in ra if r not in rb],
        "rules_changed": changed_rules,
        "same": digest(a) == digest(b),
    }


def format_diff(diff: Mapping[str, Any]) -> str:
    """The diff as lines a person reads (``+`` added, ``-`` removed, ``~`` changed)."""

    def name(side: Mapping[str, Any]) -> str:
        return f"{side['name']} v{side['version']}" + "".join(f" + {o}" for o in side["overlays"])

    lines = [f"--- {name(diff['a'])} ({diff['a']['digest']})"]
    lines.append(f"+++ {name(diff['b'])} ({diff['b']['digest']})")
    if diff["same"]:
        lines.append("no changes that decide (principles, weights, edges and rules are equal)")
    for pid in diff["principles_added"]:
        lines.append(f"+ principle {pid}")
    for pid in diff["principles_removed"]:
        lines.append(f"- principle {pid}")
    for pid, changes in diff["principles_changed"].items():
        parts = [
            f"{k} {v[0]} -> {v[1]}" if v[0] != "changed" else f"{k} changed"
            for k, v in changes.items()
        ]
        lines.append(f"~ principle {pid}: {'; '.join(parts)}")
    for edge in diff["edges_added"]:
        lines.append(f"+ edge {edge}")
    for edge in diff["edges_removed"]:
        lines.append(f"- edge {edge}")
    for rid in diff["rules_added"]:
        lines.append(f"+ rule {rid}")
    for rid in diff["rules_removed"]:
        lines.append(f"- rule {rid}")
    for rid, ch in diff["rules_changed"].items():
        lines.append(
            f"~ rule {rid}: when {ch['when'][0]} -> {ch['when'][1]}; adds "
            f"{', '.join(ch['add_edges'][0]) or '-'} -> {', '.join(ch['add_edges'][1]) or '-'}; "
            f"removes {', '.join(ch['remove_edges'][0]) or '-'} -> "
            f"{', '.join(ch['remove_edges'][1]) or '-'}"
        )
    return "\n".join(lines)


__all__ = [
    "CONTEXT_KEY",
    "CONTEXT_SHORTHANDS",
    "CONTEXT_VALUE",
    "ConstitutionSet",
    "LoadedSelector",
    "Selector",
    "Variant",
    "check_context",
    "diff_constitutions",
    "digest",
    "format_diff",
    "make_variant",
]
