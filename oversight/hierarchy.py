"""Hierarchy specs: which model plays which role, what each critic checks, who supervises whom.

A hierarchy is a YAML file in ``roles/`` (see ``roles/default.yaml``)::

    name: default
    constitution: constitutions/default.yaml
    overlays: []
    escalation: escalation/default.yaml
    models:
      base: {backend: scripted, options: {}}
    agents:
      - {name: base, role: base, model: base}
      - {name: harm-critic, role: critic, model: base, principles: [harm, lawful]}
      - {name: judge, role: judge, model: base}
      - {name: people, role: human}
    supervision:                 # the supervisor reviews the subject's output
      - {supervisor: harm-critic, subject: base, mode: every}
      - {supervisor: judge, subject: harm-critic, mode: sample, rate: 0.25}
      - {supervisor: people, subject: judge, mode: on-flag}
    settings: {max_revision_rounds: 2, seed: 0}

:func:`load_hierarchy` validates the file, loads the constitution (with overlays) and the
escalation policy (paths relative to the hierarchy file first, then the packaged data), and
checks every cross-reference: roles, models, principles, edges, cycles, and that a person can be
reached when the policy can escalate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .config import (
    Problems,
    add_lines,
    config_error,
    describe_validation_error,
    did_you_mean,
    read_config,
)
from .errors import ConfigError, UnknownModelError, UnknownPrincipleError, UnknownRoleError
from .escalation.policy import EscalationPolicy, load_policy
from .governance import Selector
from .paths import resolve_config

if TYPE_CHECKING:
    from .constitution import Constitution
    from .governance import ConstitutionSet

SupervisionMode: TypeAlias = Literal["every", "sample", "on-flag"]

BUILTIN_ROLES: tuple[str, ...] = ("base", "critic", "safety", "judge", "reviser", "human")
"""Roles every hierarchy may use; more can be registered with ``oversight.agents.register_role``."""


def known_roles() -> list[str]:
    """Built-in roles plus any registered with ``oversight.agents.register_role``."""
    names = set(BUILTIN_ROLES)
    try:
        from .agents import role_names
    except ImportError:  # the agents package is optional for reading specs
        return sorted(names)
    return sorted(names | set(role_names()))


class _Config(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelSpec(_Config):
    """A named model configuration that agents refer to."""

    backend: str
    """Registered backend name: ``scripted``, ``simulated``, ``transformers``, ``openai``, ..."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Options passed to the backend's factory (model id, device, accuracy, ...)."""


class AgentSpec(_Config):
    """One agent of the hierarchy."""

    name: str = Field(min_length=1)
    """Unique name (used in supervision edges, messages and the journal)."""
    role: str
    """What the agent does: ``base``, ``critic``, ``safety``, ``judge``, ``reviser``, ``human``
    (or a role registered by a plugin)."""
    model: str | None = None
    """Name of an entry of ``models``; every role except ``human`` needs one."""
    principles: tuple[str, ...] = ()
    """Principle ids the agent checks (critics must list at least one)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Role-specific options (free-form; the role's class reads them)."""


class SupervisionEdge(_Config):
    """``supervisor`` reviews ``subject``'s output."""

    supervisor: str
    """Agent that reviews."""
    subject: str
    """Agent whose output is reviewed."""
    mode: SupervisionMode = "every"
    """``every`` case, a random ``sample`` of cases (``rate``), or ``on-flag`` (only when the
    subject or a peer flagged something)."""
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of cases reviewed when ``mode`` is ``sample``."""

    @model_validator(mode="after")
    def _rate(self) -> SupervisionEdge:
        if self.mode != "sample" and self.rate != 1.0:
            raise ValueError(
                f"rate {self.rate} only applies to mode 'sample'; use mode: sample or drop rate"
            )
        return self


class HierarchySettings(_Config):
    """Run settings that every agent of the hierarchy shares."""

    max_revision_rounds: int = Field(default=2, ge=0)
    """How many times the reviser may revise while violations remain."""
    best_of_n: int = Field(default=1, ge=1)
    """Revisions sampled per round; the judge picks the best."""
    max_new_tokens: int = Field(default=128, ge=1)
    """Upper bound on generated tokens per answer."""
    temperature: float = Field(default=0.0, ge=0.0)
    """Sampling temperature (0: greedy)."""
    seed: int = 0
    """Seed of every random draw (sampling, supervision samples, audits)."""
    concurrency: int = Field(default=16, ge=1)
    """Episodes run at the same time (their model calls batch together)."""
    episode_timeout: float = Field(default=300.0, gt=0)
    """Seconds before an episode fails with a journaled ``TimeoutError`` (a hung backend);
    raise it for slow local models, whose calls wait in line behind other episodes'."""


class HierarchySpec(_Config):
    """A whole hierarchy file, validated; :func:`load_hierarchy` also loads its constitution
    and policy (:attr:`constitution`, :attr:`policy`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str
    """Name of the hierarchy."""
    description: str = ""
    """What the hierarchy is for."""
    constitution_file: str = Field(default="constitutions/default.yaml", alias="constitution")
    """Constitution file (YAML key ``constitution``); relative to this file, else packaged."""
    overlays: tuple[str, ...] = ()
    """Overlay files applied to the constitution in order."""
    contexts: dict[str, list[str]] = Field(default_factory=dict)
    """Context key -> the values a prompt may give it (``region: [eu, us]``); a prompt with
    another value fails with a clear message instead of silently missing its ``select`` entry.
    Keys not listed are free."""
    select: tuple[Selector, ...] = ()
    """Per-request constitutions: overlays (or another constitution) for the prompts whose
    context matches (:mod:`oversight.governance`)."""
    escalation_file: str = Field(default="escalation/default.yaml", alias="escalation")
    """Escalation policy file (YAML key ``escalation``); relative to this file, else packaged."""
    models: dict[str, ModelSpec] = Field(default_factory=dict)
    """Named model configurations."""
    agents: tuple[AgentSpec, ...] = Field(min_length=1)
    """The agents."""
    supervision: tuple[SupervisionEdge, ...] = ()
    """Who reviews whom."""
    settings: HierarchySettings = Field(default_factory=HierarchySettings)
    """Shared run settings."""
    source: str | None = None
    """The file the hierarchy was loaded from (named in errors)."""

    _constitution: Constitution | None = PrivateAttr(default=None)
    _policy: EscalationPolicy | None = PrivateAttr(default=None)
    _constitutions: ConstitutionSet | None = PrivateAttr(default=None)

    # ------------------------------------------------------------------ validation

    @model_validator(mode="after")
    def _check_structure(self) -> HierarchySpec:
        from .backends import backend_names

        problems = Problems(self, path=self.source)
        roles = known_roles()
        backends = backend_names()
        for mname, model in self.models.items():
            if model.backend not in backends:
                problems.add(
                    ("models", mname, "backend"),
                    f"unknown backend {model.backend!r}{did_you_mean(model.backend, backends)}; "
                    f"known backends: {', '.join(backends)}",
                    UnknownModelError,
                )
        seen: set[str] = set()
        for i, agent in enumerate(self.agents):
            if agent.name in seen:
                problems.add(
                    ("agents", i, "name"),
                    f"duplicate agent name {agent.name!r}; give each agent a unique name",
                )
            seen.add(agent.name)
            if agent.role not in roles:
                problems.add(
                    ("agents", i, "role"),
                    f"unknown role {agent.role!r}{did_you_mean(agent.role, roles)}; "
                    f"known roles: {', '.join(roles)}",
                    UnknownRoleError,
                )
            if agent.model is None and agent.role != "human":
                problems.add(
                    ("agents", i, "model"),
                    f"a {agent.role} agent needs a model; add `model: <name>` naming one of "
                    f"models ({', '.join(self.models) or 'none defined'})",
                    UnknownModelError,
                )
            if agent.model is not None and agent.model not in self.models:
                problems.add(
                    ("agents", i, "model"),
                    f"unknown model {agent.model!r}{did_you_mean(agent.model, self.models)}; "
                    f"define it under `models:` (defined: {', '.join(self.models) or 'none'})",
                    UnknownModelError,
                )
            if agent.role == "critic" and not agent.principles:
                problems.add(
                    ("agents", i, "principles"),
                    "a critic must check at least one principle; add e.g. `principles: [harm]`",
                )
        bases = [a.name for a in self.agents if a.role == "base"]
        if not bases:
            problems.add(
                ("agents",),
                "no agent has role 'base'; add one, e.g. `- {name: base, role: base, model: "
                "<model>}`",
            )
        if len(bases) > 1:
            problems.add(
                ("agents",),
                f"one base agent per hierarchy, found {len(bases)} ({', '.join(bases)})",
            )
        edges_known = True
        names = [a.name for a in self.agents]
        for i, edge in enumerate(self.supervision):
            for end in ("supervisor", "subject"):
                name = getattr(edge, end)
                if name not in seen:
                    edges_known = False
                    problems.add(
                        ("supervision", i, end),
                        f"unknown agent {name!r}{did_you_mean(name, names)}; "
                        f"agents: {', '.join(names)}",
                    )
            if edge.supervisor == edge.subject:
                edges_known = False
                problems.add(
                    ("supervision", i),
                    f"agent {edge.supervisor!r} supervises itself; an agent cannot review its "
                    "own output, pick a different supervisor",
                )
        if edges_known and len(bases) == 1:
            self._check_graph(bases[0], problems)
        problems.raise_if_any()
        return self

    def _check_graph(self, base: str, problems: Problems) -> None:
        """Whole-graph checks, once every edge names known agents: no cycle, the base at the
        bottom, every reviewing agent connected to the base."""
        graph = self.supervision_graph()
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            cycle = []
        if cycle:
            names = [u for u, _v, *_ in cycle]
            loop = " -> ".join([*names, names[0]])
            problems.add(
                ("supervision",),
                f"cycle {loop} (an edge a -> b means a reviews b); a hierarchy must be acyclic, "
                "remove or reverse one of these edges",
            )
            return
        below = nx.descendants(graph, base)  # agents the base supervises: makes no sense
        if below:
            problems.add(
                ("supervision",),
                f"the base agent {base!r} supervises {', '.join(sorted(below))}; the base is "
                "the bottom of the hierarchy, make it a subject only",
            )
        above = nx.ancestors(graph, base)
        for i, agent in enumerate(self.agents):
            if agent.role in ("critic", "safety", "judge") and agent.name not in above:
                problems.add(
                    ("agents", i),
                    f"the {agent.role} is not connected to the base {base!r} through "
                    "supervision edges, so it would never run; add e.g. "
                    f"`- {{supervisor: {agent.name}, subject: {base}, mode: every}}`",
                )

    def check_against(self, constitution: Constitution, policy: EscalationPolicy) -> None:
        """Check the cross-file references: principles exist, a person is reachable.

        The hierarchy's own problems are raised together first (naming the hierarchy file),
        then the policy's (naming the policy file)."""
        problems = Problems(self, path=self.source)
        ids = constitution.ids
        for i, agent in enumerate(self.agents):
            for j, pid in enumerate(agent.principles):
                if pid not in ids:
                    problems.add(
                        ("agents", i, "principles", j),
                        f"unknown principle {pid!r}{did_you_mean(pid, ids)}; constitution "
                        f"{constitution.name!r} defines {', '.join(ids)}",
                        UnknownPrincipleError,
                    )
        if policy.can_escalate:
            graph = self.supervision_graph()
            base = self.base.name
            humans = [a.name for a in self.agents if a.role == "human"]
            if not any(nx.has_path(graph, h, base) for h in humans):
                fix = (
                    f"add a supervision edge from {humans[0]!r} to an agent above the base, "
                    f"e.g. `- {{supervisor: {humans[0]}, subject: <judge>, mode: on-flag}}`"
                    if humans
                    else "add `- {name: people, role: human}` and an edge "
                    "`- {supervisor: people, subject: <judge>, mode: on-flag}`"
                )
                problems.add(
                    ("supervision",),
                    f"policy {policy.name!r} can escalate cases but no human agent supervises "
                    f"the base {base!r}, directly or through other agents; {fix} (or use a "
                    "policy whose triggers are all off)",
                )
        problems.raise_if_any()
        policy.check_principles(ids)

    # ------------------------------------------------------------------ loaded parts

    @property
    def constitution(self) -> Constitution:
        """The constitution with overlays applied (loaded by :func:`load_hierarchy`)."""
        if self._constitution is None:
            raise ConfigError(
                f"hierarchy {self.name!r} was built without its constitution; "
                "use load_hierarchy(path) or spec.with_config(constitution, policy)",
                path=self.source,
            )
        return self._constitution

    @property
    def policy(self) -> EscalationPolicy:
        """The escalation policy (loaded by :func:`load_hierarchy`)."""
        if self._policy is None:
            raise ConfigError(
                f"hierarchy {self.name!r} was built without its escalation policy; "
                "use load_hierarchy(path) or spec.with_config(constitution, policy)",
                path=self.source,
            )
        return self._policy

    @property
    def constitutions(self) -> ConstitutionSet:
        """The constitutions this hierarchy applies per request (just :attr:`constitution` when
        it has no ``select`` entries)."""
        if self._constitutions is None:
            from .governance import ConstitutionSet

            self._constitutions = ConstitutionSet(
                self.constitution, self.policy, contexts=self.contexts, source=self.source
            )
        return self._constitutions

    def with_constitutions(self, constitutions: ConstitutionSet) -> HierarchySpec:
        """A copy that selects per request from ``constitutions``; every variant is built now
        and checked against the agents' principles (ConfigError naming the entries)."""
        spec = self.model_copy()
        spec._constitution, spec._policy = self._constitution, self._policy
        problems = Problems(self, path=self.source)
        for variant in constitutions.variants():
            ids = variant.constitution.ids
            for i, agent in enumerate(self.agents):
                for j, pid in enumerate(agent.principles):
                    if pid not in ids:
                        problems.add(
                            ("agents", i, "principles", j),
                            f"principle {pid!r} is not in the constitution that `select` "
                            f"entries {', '.join(variant.selected_by)} give (an overlay removes "
                            "it); keep it in that overlay or drop it from this agent",
                            UnknownPrincipleError,
                        )
        problems.raise_if_any()
        spec._constitutions = constitutions
        return spec

    def with_config(self, constitution: Constitution, policy: EscalationPolicy) -> HierarchySpec:
        """A copy bound to an already loaded constitution and policy (checked against them)."""
        self.check_against(constitution, policy)
        spec = self.model_copy()
        spec._constitution = constitution
        spec._policy = policy
        return spec

    # ------------------------------------------------------------------ queries

    @property
    def base(self) -> AgentSpec:
        """The base agent."""
        return next(a for a in self.agents if a.role == "base")

    def agent(self, name: str) -> AgentSpec:
        """The agent with this name (ConfigError otherwise)."""
        for agent in self.agents:
            if agent.name == name:
                return agent
        names = [a.name for a in self.agents]
        raise ConfigError(
            f"no agent named {name!r}{did_you_mean(name, names)}; agents: {', '.join(names)}",
            path=self.source,
        )

    def agents_by_role(self, role: str) -> list[AgentSpec]:
        """Agents with this role, in file order."""
        return [a for a in self.agents if a.role == role]

    def supervision_graph(self) -> nx.DiGraph:
        """Directed graph of agents; edge ``a -> b`` means a reviews b (``mode``, ``rate``)."""
        graph = nx.DiGraph()
        for agent in self.agents:
            graph.add_node(agent.name, role=agent.role)
        for edge in self.supervision:
            graph.add_edge(edge.supervisor, edge.subject, mode=edge.mode, rate=edge.rate)
        return graph

    def levels(self) -> dict[str, int]:
        """Depth of each agent above the base: base 0, its supervisors 1, theirs 2, ...

        The depth is the longest chain of reviews down to the base. The reviser writes
        candidates like the base (level 0); agents not above the base (e.g. a person with no
        edges) sit one level above the highest agent.
        """
        graph = self.supervision_graph()
        base = self.base.name
        depth: dict[str, int] = {base: 0}
        above = nx.ancestors(graph, base)
        # Reverse topological order of the reviews: subjects before their supervisors.
        for node in reversed(list(nx.topological_sort(graph))):
            if node not in above:
                continue
            depth[node] = 1 + max(
                (depth[s] for s in graph.successors(node) if s in depth), default=0
            )
        top = max(depth.values())
        for agent in self.agents:
            if agent.name not in depth:
                depth[agent.name] = 0 if agent.role in ("reviser", "base") else top + 1
        return {a.name: depth[a.name] for a in self.agents}

    def supervisors_of(self, agent: str) -> list[str]:
        """Agents that review ``agent``'s output directly, in file order."""
        self.agent(agent)
        return [e.supervisor for e in self.supervision if e.subject == agent]

    def subjects_of(self, agent: str) -> list[str]:
        """Agents whose output ``agent`` reviews directly, in file order."""
        self.agent(agent)
        return [e.subject for e in self.supervision if e.supervisor == agent]

    def edges_for(self, subject: str) -> list[SupervisionEdge]:
        """The supervision edges whose subject is ``subject``, in file order."""
        self.agent(subject)
        return [e for e in self.supervision if e.subject == subject]

    def model_for(self, agent: str) -> ModelSpec | None:
        """The model configuration of an agent (None for people)."""
        spec = self.agent(agent)
        return None if spec.model is None else self.models[spec.model]


def parse_hierarchy(data: dict[str, Any], *, path: str | Path | None = None) -> HierarchySpec:
    """Validate a hierarchy mapping (the YAML's content) without loading other files.

    Every problem is reported at once (one :class:`ConfigError`); use :func:`load_hierarchy`
    for a file, whose errors also give line numbers.
    """
    try:
        return HierarchySpec.model_validate(
            {**data, "source": str(path) if path is not None else None}
        )
    except ValidationError as err:
        found = describe_validation_error(err, model=HierarchySpec, data=data)
        raise config_error(found, path=path) from None


def load_hierarchy(path: str | Path) -> HierarchySpec:
    """Load a hierarchy YAML file with its constitution (overlays applied) and policy.

    The constitution, overlay and policy paths are looked up relative to the hierarchy file
    first, then as given, then in the packaged data (``oversight.paths.resolve_config``).
    Raises :class:`ConfigError` (or a subclass) naming the file and key on any problem.
    """
    from .constitution import load_constitution

    resolved = resolve_config(path)
    doc = read_config(resolved, what="hierarchy", example="roles/default.yaml")
    spec = doc.validate(HierarchySpec)
    constitution_file = _beside(spec.constitution_file, resolved)
    # an overlay may also be named relative to the constitution (as load_constitution does)
    overlay_files = [
        resolve_config(_beside(o, resolved), relative_to=constitution_file) for o in spec.overlays
    ]
    policy_file = _beside(spec.escalation_file, resolved)
    missing = Problems(spec, path=resolved)
    referenced = [
        (("constitution",), spec.constitution_file, constitution_file),
        *((("overlays", i), spec.overlays[i], f) for i, f in enumerate(overlay_files)),
        (("escalation",), spec.escalation_file, policy_file),
    ]
    for loc, name, file in referenced:
        if not file.is_file():
            missing.add(
                loc,
                f"file {name!r} not found (looked beside this file, in the folders above it, "
                "as given, and in the packaged data); fix the path",
            )
    if missing:
        raise config_error(doc.locate(missing), path=resolved)
    constitution = load_constitution(constitution_file, overlays=overlay_files)
    policy = load_policy(policy_file)
    try:
        spec = spec.with_config(constitution, policy)
        if spec.select:
            spec = spec.with_constitutions(
                _load_selectors(spec, doc, resolved, constitution, policy, missing)
            )
        return spec
    except ConfigError as err:  # with the line of each problem, in this file or the policy's
        raise doc.add_lines(err) if err.path == str(resolved) else add_lines(err) from None


def _load_selectors(
    spec: HierarchySpec,
    doc: Any,
    resolved: Path,
    constitution: Constitution,
    policy: EscalationPolicy,
    missing: Problems,
) -> ConstitutionSet:
    """The hierarchy's ``select`` entries with their files loaded."""
    from .constitution import load_constitution, load_overlay
    from .governance import ConstitutionSet, LoadedSelector

    loaded = []
    for i, selector in enumerate(spec.select):
        base_file = _beside(selector.constitution, resolved) if selector.constitution else None
        files: list[tuple[tuple[str | int, ...], str, Path]] = [
            (("select", i, "overlays", j), name, _beside(name, resolved))
            for j, name in enumerate(selector.overlays)
        ]
        if base_file is not None:
            files.append((("select", i, "constitution"), str(selector.constitution), base_file))
        for loc, name, file in files:
            if not file.is_file():
                missing.add(loc, f"file {name!r} not found; fix the path")
        if missing:
            continue
        other = load_constitution(base_file) if base_file is not None else None
        overlays = tuple(load_overlay(file) for loc, _, file in files if "overlays" in loc)
        loaded.append(LoadedSelector(selector, other, overlays))
    if missing:
        raise config_error(doc.locate(missing), path=resolved)
    return ConstitutionSet(
        constitution, policy, loaded, contexts=spec.contexts, source=str(resolved)
    )


def _beside(name: str, hierarchy_file: Path) -> Path:
    """``name`` relative to the hierarchy file's folder (or its parents), else as resolved."""
    p = Path(name).expanduser()
    if p.is_absolute():
        return p
    for root in (hierarchy_file.parent, *hierarchy_file.parent.parents):
        if (root / p).exists():
            return root / p
    return resolve_config(p)


__all__ = [
    "BUILTIN_ROLES",
    "AgentSpec",
    "HierarchySettings",
    "HierarchySpec",
    "ModelSpec",
    "SupervisionEdge",
    "SupervisionMode",
    "known_roles",
    "load_hierarchy",
    "parse_hierarchy",
]
