"""One way to read a configuration file: YAML with line numbers, every problem at once.

Every YAML file of the framework (constitutions, overlays, hierarchies, escalation policies,
simulation settings, training configs) is read with :func:`read_config` and validated with
:meth:`ConfigDocument.validate`:

- the YAML is parsed once into its data *and* its node tree, so each problem names its line;
- a key given twice in one mapping is a problem named with both lines (PyYAML alone would keep
  the second value silently);
- pydantic's validation errors become one :class:`~oversight.errors.ConfigProblem` per key path
  (``agents[2] (judge).model``) saying what was expected, with "did you mean ...?" (difflib) for
  a misspelt key or value;
- the cross-reference checks of the models (an unknown principle, a supervision cycle) collect
  their problems with :class:`Problems` instead of stopping at the first;
- everything found in one file is raised together as one :class:`~oversight.errors.ConfigError`
  (its ``problems`` list them, its message starts with the file).

Example::

    doc = read_config(path, what="hierarchy", example="roles/default.yaml")
    spec = doc.validate(HierarchySpec)
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError, ConfigProblem

M = TypeVar("M", bound=BaseModel)

Loc = tuple[str | int, ...]
"""A key path: mapping keys and list indices from the top of the file."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
_LABELS = ("id", "name")
"""Keys whose value labels a list item in a key path (``principles[2] (privacy)``)."""


# --------------------------------------------------------------------------- names


def closest(name: object, known: Iterable[object]) -> str | None:
    """The entry of ``known`` closest to ``name`` when one is close enough (difflib)."""
    match = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return match[0] if match else None


def did_you_mean(name: object, known: Iterable[object]) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` to ``name``, else ``""``."""
    match = closest(name, known)
    return f" (did you mean {match!r}?)" if match is not None else ""


def _child(data: Any, part: str | int) -> Any:
    if isinstance(part, int):
        if isinstance(data, list | tuple) and -len(data) <= part < len(data):
            return data[part]
        return None
    if isinstance(data, Mapping):
        return data.get(part)
    if isinstance(data, BaseModel) and part in type(data).model_fields:
        return getattr(data, part)
    return None


def _label(item: Any) -> str | None:
    for key in _LABELS:
        value = _child(item, key)
        if isinstance(value, str):
            return value
    return None


def key_name(loc: Sequence[str | int], data: Any = None) -> str:
    """``principles[2] (privacy).weight``: the key path, each list item labelled by its id or
    name when ``data`` (the file's content or the validated model) has one."""
    out = ""
    for index, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
            data = _child(data, part)
            label = _label(data)
            following = loc[index + 1] if index + 1 < len(loc) else None
            if label is not None and following not in _LABELS:
                out += f" ({label})"
        else:
            out += f".{part}" if out else str(part)
            data = _child(data, part)
    return out


# --------------------------------------------------------------------------- collecting


class Problems:
    """Collects the problems of one file so they are reported together.

    ``root`` (the validated model or the raw data) labels list items in key paths. Use it in a
    model validator::

        problems = Problems(self, path=self.source)
        for i, agent in enumerate(self.agents):
            if agent.role not in roles:
                problems.add(("agents", i, "role"), f"unknown role ...", UnknownRoleError)
        problems.raise_if_any()
    """

    def __init__(self, root: Any = None, *, path: str | Path | None = None) -> None:
        self.root = root
        self.path = path
        self._items: list[ConfigProblem] = []

    def add(
        self,
        loc: Sequence[str | int],
        message: str,
        error: type[ConfigError] = ConfigError,
    ) -> None:
        """Record one problem at ``loc`` (the key path); ``message`` says what to do."""
        loc = tuple(loc)
        self._items.append(
            ConfigProblem(key=key_name(loc, self.root), message=message, loc=loc, error=error)
        )

    def extend(self, problems: Iterable[ConfigProblem]) -> None:
        """Record problems found elsewhere (e.g. by pydantic)."""
        self._items.extend(problems)

    def __iter__(self) -> Iterator[ConfigProblem]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def raise_if_any(self) -> None:
        """Raise every recorded problem as one :class:`ConfigError` (none recorded: return)."""
        if self._items:
            raise config_error(self._items, path=self.path)


def config_error(
    problems: Sequence[ConfigProblem], *, path: str | Path | None = None
) -> ConfigError:
    """One error for all problems of a file, sorted by line.

    The error is an instance of every specific class among its problems (an unknown role and
    an unknown model: both ``UnknownRoleError`` and ``UnknownModelError``), so
    ``except UnknownModelError`` still catches a file whose problems include an unknown model;
    with none, it is a plain :class:`ConfigError`.
    """
    ordered = sorted(problems, key=lambda p: (p.line is None, p.line or 0))
    kinds = tuple(
        dict.fromkeys(
            p.error
            for p in ordered
            if p.error is not None
            and p.error is not ConfigError
            and p.error.__init__ is ConfigError.__init__  # e.g. not PriorityCycleError
        )
    )
    return _error_class(kinds)(path=path, problems=ordered)


_COMBINED: dict[tuple[type[ConfigError], ...], type[ConfigError]] = {}


def _error_class(kinds: tuple[type[ConfigError], ...]) -> type[ConfigError]:
    """``ConfigError``, the one kind, or a class deriving from each kind (cached)."""
    if not kinds:
        return ConfigError
    if len(kinds) == 1:
        return kinds[0]
    if kinds not in _COMBINED:
        names = ", ".join(k.__name__ for k in kinds)
        _COMBINED[kinds] = type(
            "ConfigError",
            kinds,
            {
                "__doc__": f"Several problems in one file; an instance of each of: {names}.",
                "__module__": ConfigError.__module__,
                "__reduce__": _reduce_combined,
                "kinds": kinds,
            },
        )
    return _COMBINED[kinds]


def _reduce_combined(err: Any) -> tuple[Any, ...]:
    return (_rebuild_combined, (err.kinds, err.path, err.problems))


def _rebuild_combined(
    kinds: tuple[type[ConfigError], ...], path: str | None, problems: tuple[ConfigProblem, ...]
) -> ConfigError:
    return _error_class(kinds)(path=path, problems=problems)


# --------------------------------------------------------------------------- pydantic errors


def _unwrap(annotation: Any) -> Any:
    """``X`` from ``Annotated[X, ...]`` and ``X | None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def _model_at(model: type[BaseModel] | None, loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (None when it is not a model)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields = annotation.model_fields
            name = next(
                (n for n, f in fields.items() if part in (n, f.alias)),
                None,
            )
            if name is None:
                return None
            annotation = fields[name].annotation
            continue
        origin, args = get_origin(annotation), get_args(annotation)
        if origin in (tuple, list, set, frozenset) and isinstance(part, int) and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or n for n, f in model.model_fields.items() if n != "source"]


def _shown(value: Any) -> str:
    """`` (got 'x')`` for a short input; a long one (a whole mapping) would bury the message."""
    text = repr(value)
    return f" (got {text})" if len(text) <= 80 else ""


def _describe(item: Any, model: type[BaseModel] | None, loc: Loc) -> str:
    kind = item["type"]
    if kind == "missing":
        return "required key is missing; add it"
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        keys = _keys_of(owner) if owner is not None else []
        hint = did_you_mean(loc[-1], keys) if loc else ""
        if hint:
            return f"unknown key{hint}; fix its spelling or remove it"
        known = f" (keys allowed here: {', '.join(keys)})" if keys else ""
        return f"unknown key; remove it or check its spelling{known}"
    text = str(item["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    text = text.replace("a valid tuple", "a list").replace("Tuple should", "List should")
    text = text.replace("a valid dictionary", "a mapping (key: value)")
    got = item.get("input")
    if kind in ("literal_error", "enum") and isinstance(got, str):
        expected = re.findall(r"'([^']*)'", str((item.get("ctx") or {}).get("expected", "")))
        match = closest(got, expected)
        if match is not None:
            return f"{text} (got {got!r}; did you mean {match!r}?)"
    return f"{text}{_shown(got)}"


def describe_validation_error(
    err: ValidationError, *, model: type[BaseModel] | None = None, data: Any = None
) -> list[ConfigProblem]:
    """One problem per pydantic error: the key path (items labelled from ``data``), what was
    expected, what was given, and "did you mean ...?" for a misspelt key or choice.

    ``model`` (the validated class) lets an unknown key be matched against the keys allowed at
    its place.
    """
    items = []
    for item in err.errors():
        # pydantic adds the names of function validators and "[key]" for a bad mapping key.
        loc = tuple(
            p
            for p in item["loc"]
            if isinstance(p, int) or not (p.startswith("function-") or p == "[key]")
        )
        items.append((loc, item))
    problems = []
    for loc, item in items:
        # A list whose every item failed is also "too short"; its items' problems say why.
        if item["type"] == "too_short" and any(
            len(other) > len(loc) and other[: len(loc)] == loc for other, _ in items
        ):
            continue
        problems.append(
            ConfigProblem(
                key=key_name(loc, data) or "(top level)",
                message=_describe(item, model, loc),
                loc=loc,
            )
        )
    return problems


# --------------------------------------------------------------------------- YAML


def line_of(node: yaml.Node | None, loc: Sequence[str | int]) -> int | None:
    """1-based line of ``loc`` in a composed YAML tree.

    A mapping key gives the key's line; a list item its first line. When only the last key is
    absent (a missing key) the line of the mapping that should hold it; otherwise None.
    """
    if node is None or not loc:
        return None
    line = node.start_mark.line + 1
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        nxt: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in reversed(node.value):  # PyYAML keeps the last of equal keys
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    line, nxt = key.start_mark.line + 1, value
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            nxt = node.value[part]
            line = nxt.start_mark.line + 1
        if nxt is None:
            return line if last else None
        node = nxt
    return line


def _duplicate_keys(root: yaml.Node) -> list[tuple[Loc, int, int]]:
    """(key path, line, line of the first definition) of each key repeated in one mapping."""
    found: list[tuple[Loc, int, int]] = []
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    visited: set[int] = set()  # an anchor's node is shared by its aliases
    while stack:
        node, loc = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                child = loc
                if isinstance(key, yaml.ScalarNode) and key.tag != _MERGE_TAG:
                    line = key.start_mark.line + 1
                    child = (*loc, key.value)
                    ident = (key.tag, key.value)
                    if ident in first:
                        found.append((child, line, first[ident]))
                    else:
                        first[ident] = line
                stack.append((value, child))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, (*loc, i)) for i, item in enumerate(node.value))
    return found


@dataclass
class ConfigDocument:
    """A YAML configuration file as read by :func:`read_config`."""

    path: Path
    """The file."""
    data: dict[str, Any]
    """Its content (a mapping)."""
    node: yaml.Node | None = None
    """Its composed node tree, for line numbers (None for an empty file)."""
    problems: list[ConfigProblem] = field(default_factory=list)
    """Problems found while reading (keys given twice), reported with the validation's."""

    def line(self, loc: Sequence[str | int]) -> int | None:
        """1-based line of a key path in the file (see :func:`line_of`)."""
        return line_of(self.node, loc)

    def locate(self, problems: Iterable[ConfigProblem]) -> list[ConfigProblem]:
        """The problems with their line filled in where the file has their key path."""
        return [
            replace(p, line=self.line(p.loc)) if p.line is None and p.loc else p for p in problems
        ]

    def validate(self, model: type[M], data: Mapping[str, Any] | None = None) -> M:
        """Validate ``data`` (default: the file's content) as ``model``.

        A model with a ``source`` field gets the file's path there. Duplicate keys, every
        pydantic error and every problem of the model's own checks are raised together as one
        :class:`ConfigError` naming the file, each problem with its key path and line.
        """
        content = dict(self.data if data is None else data)
        problems = list(self.problems)
        if "source" in model.model_fields:
            if "source" in content:
                problems.append(
                    ConfigProblem(
                        key="source",
                        message="set by the loader to the file's path; remove this key",
                        loc=("source",),
                    )
                )
            content["source"] = str(self.path)
        try:
            result = model.model_validate(content)
        except ValidationError as err:
            problems.extend(describe_validation_error(err, model=model, data=content))
        except ConfigError as err:
            if not err.problems and not problems:
                raise  # a single error of its own kind (e.g. PriorityCycleError)
            problems.extend(err.problems or [ConfigProblem(key="", message=err.detail)])
        if problems:
            raise config_error(self.locate(problems), path=self.path)
        return result

    def add_lines(self, err: ConfigError) -> ConfigError:
        """``err`` with line numbers, when it is about this file and its problems have none."""
        if not err.problems or err.path != str(self.path):
            return err
        located = self.locate(err.problems)
        return err if located == list(err.problems) else config_error(located, path=self.path)


def read_config(
    path: str | Path,
    *,
    what: str = "config",
    example: str | None = None,
    allow_empty: bool = False,
) -> ConfigDocument:
    """Read a YAML file that must hold a mapping.

    ``what`` names the kind of file in messages (``hierarchy``), ``example`` a packaged file to
    suggest when it is missing. Unreadable files, malformed YAML (with line and column), an empty
    file (unless ``allow_empty``) and a top level that is not a mapping raise
    :class:`ConfigError` at once; keys given twice are collected in
    :attr:`ConfigDocument.problems` and reported by :meth:`ConfigDocument.validate`.
    """
    path = Path(path)
    if not path.is_file():
        there = "is a folder" if path.is_dir() else "not found"
        packaged = f" or a packaged name such as {example!r}" if example else ""
        raise ConfigError(f"{what} file {there}; pass the path of a YAML file{packaged}", path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"cannot read the file ({err}); it must be UTF-8 YAML", path=path
        ) from None
    # PyYAML's safe loader, in two steps: compose the node tree (kept for line numbers and
    # walked for duplicate keys with their key paths), then construct the data from it.
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        duplicates = _duplicate_keys(node) if node is not None else []
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        context, start = getattr(err, "context", None), getattr(err, "context_mark", None)
        if context and start is not None:  # e.g. "while parsing a flow sequence" and its start
            problem = f"{context} that starts at line {start.line + 1}: {problem}"
        raise ConfigError(
            f"{where}malformed YAML ({problem}); fix the syntax there (indentation, a missing "
            "colon, or an unquoted string containing ': ' or '{')",
            path=path,
        ) from None
    finally:
        loader.dispose()
    if data is None:
        if not allow_empty:
            raise ConfigError(f"the file is empty; a {what} file holds a YAML mapping", path=path)
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a YAML mapping (key: value lines), not a {type(data).__name__}",
            path=path,
        )
    problems = [
        ConfigProblem(
            key=key_name(loc, data),
            message=f"duplicate key {loc[-1]!r} (first defined at line {first}); YAML would "
            "silently keep only the last value, so keep one of them",
            line=line,
            loc=loc,
        )
        for loc, line, first in sorted(duplicates, key=lambda item: item[1])
    ]
    return ConfigDocument(path=path, data=data, node=node, problems=problems)


def add_lines(err: ConfigError) -> ConfigError:
    """``err`` with line numbers from the file it names (when its problems have key paths).

    For errors found after loading, by checks across files (a hierarchy's principle that its
    constitution lacks); a file that cannot be read again leaves ``err`` as it is.
    """
    if not err.problems or err.path is None or all(p.line is not None for p in err.problems):
        return err
    try:
        doc = read_config(err.path)
    except ConfigError:
        return err
    return doc.add_lines(err)


__all__ = [
    "ConfigDocument",
    "Problems",
    "add_lines",
    "closest",
    "config_error",
    "describe_validation_error",
    "did_you_mean",
    "key_name",
    "line_of",
    "read_config",
]
