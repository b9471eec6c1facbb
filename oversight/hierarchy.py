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

import difflib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from .errors import ConfigError, UnknownModelError, UnknownPrincipleError, UnknownRoleError
from .escalation.policy import (
    EscalationPolicy,
    describe_validation_error,
    load_policy,
    read_yaml_mapping,
)
from .paths import resolve_config

if TYPE_CHECKING:
    from .constitution import Constitution

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


def _close(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


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

    # ------------------------------------------------------------------ validation

    @model_validator(mode="after")
    def _check_structure(self) -> HierarchySpec:
        from .backends import backend_names

        path = self.source
        roles = known_roles()
        backends = backend_names()
        for mname, model in self.models.items():
            if model.backend not in backends:
                raise UnknownModelError(
                    f"models.{mname}.backend: unknown backend {model.backend!r}"
                    f"{_close(model.backend, backends)}; known backends: {', '.join(backends)}",
                    path=path,
                )
        seen: set[str] = set()
        for i, agent in enumerate(self.agents):
            key = f"agents[{i}] ({agent.name})"
            if agent.name in seen:
                raise ConfigError(f"{key}: duplicate agent name; give each agent a unique name",
                                  path=path)  # fmt: skip
            seen.add(agent.name)
            if agent.role not in roles:
                raise UnknownRoleError(
                    f"{key}.role: unknown role {agent.role!r}{_close(agent.role, roles)}; "
                    f"known roles: {', '.join(roles)}",
                    path=path,
                )
            if agent.model is None and agent.role != "human":
                raise UnknownModelError(
                    f"{key}.model: a {agent.role} agent needs a model; add `model: <name>` "
                    f"naming one of models ({', '.join(self.models) or 'none defined'})",
                    path=path,
                )
            if agent.model is not None and agent.model not in self.models:
                raise UnknownModelError(
                    f"{key}.model: unknown model {agent.model!r}"
                    f"{_close(agent.model, self.models)}; define it under `models:` "
                    f"(defined: {', '.join(self.models) or 'none'})",
                    path=path,
                )
            if agent.role == "critic" and not agent.principles:
                raise ConfigError(
                    f"{key}.principles: a critic must check at least one principle; "
                    "add e.g. `principles: [harm]`",
                    path=path,
                )
        bases = [a.name for a in self.agents if a.role == "base"]
        if not bases:
            raise ConfigError(
                "agents: no agent has role 'base'; add one, e.g. "
                "`- {name: base, role: base, model: <model>}`",
                path=path,
            )
        if len(bases) > 1:
            raise ConfigError(
                f"agents: one base agent per hierarchy, found {len(bases)} ({', '.join(bases)})",
                path=path,
            )
        for i, edge in enumerate(self.supervision):
            key = f"supervision[{i}]"
            for end in ("supervisor", "subject"):
                name = getattr(edge, end)
                if name not in seen:
                    raise ConfigError(
                        f"{key}.{end}: unknown agent {name!r}{_close(name, seen)}; "
                        f"agents: {', '.join(a.name for a in self.agents)}",
                        path=path,
                    )
            if edge.supervisor == edge.subject:
                raise ConfigError(
                    f"{key}: agent {edge.supervisor!r} supervises itself; an agent cannot "
                    "review its own output, pick a different supervisor",
                    path=path,
                )
        graph = self.supervision_graph()
        try:
            cycle = nx.find_cycle(graph)
        except nx.NetworkXNoCycle:
            cycle = []
        if cycle:
            names = [u for u, _v, *_ in cycle]
            loop = " -> ".join([*names, names[0]])
            raise ConfigError(
                f"supervision: cycle {loop} (an edge a -> b means a reviews b); a hierarchy "
                "must be acyclic, remove or reverse one of these edges",
                path=path,
            )
        base = bases[0]
        below = nx.descendants(graph, base)  # agents the base supervises: makes no sense
        if below:
            raise ConfigError(
                f"supervision: the base agent {base!r} supervises {', '.join(sorted(below))}; "
                "the base is the bottom of the hierarchy, make it a subject only",
                path=path,
            )
        above = nx.ancestors(graph, base)
        for agent in self.agents:
            if agent.role in ("critic", "safety", "judge") and agent.name not in above:
                raise ConfigError(
                    f"agents ({agent.name}): the {agent.role} is not connected to the base "
                    f"{base!r} through supervision edges, so it would never run; add e.g. "
                    f"`- {{supervisor: {agent.name}, subject: {base}, mode: every}}`",
                    path=path,
                )
        return self

    def check_against(self, constitution: Constitution, policy: EscalationPolicy) -> None:
        """Check the cross-file references: principles exist, a person is reachable."""
        ids = constitution.ids
        for i, agent in enumerate(self.agents):
            for pid in agent.principles:
                if pid not in ids:
                    raise UnknownPrincipleError(
                        f"agents[{i}] ({agent.name}).principles: unknown principle {pid!r}"
                        f"{_close(pid, ids)}; constitution {constitution.name!r} defines "
                        f"{', '.join(ids)}",
                        path=self.source,
                    )
        policy.check_principles(ids)
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
                raise ConfigError(
                    f"supervision: policy {policy.name!r} can escalate cases but no human agent "
                    f"supervises the base {base!r}, directly or through other agents; {fix} "
                    "(or use a policy whose triggers are all off)",
                    path=self.source,
                )

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
            f"no agent named {name!r}{_close(name, names)}; agents: {', '.join(names)}",
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
    """Validate a hierarchy mapping (the YAML's content) without loading other files."""
    try:
        return HierarchySpec.model_validate(
            {**data, "source": str(path) if path is not None else None}
        )
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err), path=path) from None


def load_hierarchy(path: str | Path) -> HierarchySpec:
    """Load a hierarchy YAML file with its constitution (overlays applied) and policy.

    The constitution, overlay and policy paths are looked up relative to the hierarchy file
    first, then as given, then in the packaged data (``oversight.paths.resolve_config``).
    Raises :class:`ConfigError` (or a subclass) naming the file and key on any problem.
    """
    from .constitution import load_constitution

    resolved = resolve_config(path)
    data = read_yaml_mapping(resolved, "hierarchy")
    spec = parse_hierarchy(data, path=resolved)
    constitution = load_constitution(
        _beside(spec.constitution_file, resolved),
        overlays=[_beside(o, resolved) for o in spec.overlays],
    )
    policy = load_policy(_beside(spec.escalation_file, resolved))
    return spec.with_config(constitution, policy)


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
