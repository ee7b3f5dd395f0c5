"""Reading a YAML configuration file as RoadRunner's yaml.v3 would, and refusing what it refuses.

Owns the YAML step of loading: a safe loader with YAML 1.2 scalars (``yes``/``on`` stay strings, no
base-60 numbers, dates stay strings), and the checks yaml.v3 makes and PyYAML does not: a mapping
key defined twice, alias graphs that are recursive or expand past ``MAX_EXPANDED_NODES``; also
non-UTF-8 files and collections nested deeper than ``MAX_DEPTH``. Each is one ``ConfigError``
naming the file and line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from rrgrpc.errors import ConfigError

__all__ = ["MAX_DEPTH", "MAX_EXPANDED_NODES", "read_yaml"]


class _Yaml12Loader(yaml.SafeLoader):
    """Plain scalars as YAML 1.2 (Go's yaml.v3, which RoadRunner uses) reads them: only true/false are
    booleans (``yes``, ``no``, ``on``, ``off`` stay strings), ``1:30`` is not a base-60 number and
    ``2024-01-02`` stays a string rather than a date."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^[-+]?(?:[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


#: Nodes a document may have once its aliases are expanded (a "billion laughs" file has ~10^9).
MAX_EXPANDED_NODES = 100_000
#: Nesting depth of collections (PyYAML's composer recurses once per level).
MAX_DEPTH = 200


class _DocumentError(yaml.MarkedYAMLError):
    """A well-formed document rrgrpc still refuses (duplicate key, recursive or runaway aliases)."""


class _StrictYamlLoader(_Yaml12Loader):
    """``_Yaml12Loader`` plus the checks Go's yaml.v3 makes and PyYAML does not: a mapping key defined
    twice is an error, and so is an alias graph that is recursive or expands past
    ``MAX_EXPANDED_NODES`` (yaml.v3: "excessive aliasing"); nesting is bounded by ``MAX_DEPTH``."""

    def compose_document(self) -> yaml.Node | None:
        node: yaml.Node | None = super().compose_document()
        if node is not None:
            _check_graph(node)
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                if key in seen:
                    raise _DocumentError(
                        problem=f"mapping key \"{key}\" already defined at line {seen[key].start_mark.line + 1}",
                        problem_mark=key_node.start_mark,
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _check_graph(root: yaml.Node) -> None:
    """Refuse a recursive alias and a document whose aliases expand past ``MAX_EXPANDED_NODES``.

    PyYAML shares an aliased node instead of copying it, so a small file may describe an enormous
    tree (or an infinite one) that every later step would walk. Sizes are counted per shared node
    once, iteratively, so checking costs as much as the file, not as its expansion.
    """
    size: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, int]] = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        key = id(node)
        if key in size:
            continue
        children = _children(node)
        if key not in open_nodes:
            if depth > MAX_DEPTH:
                raise _DocumentError(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=node.start_mark)
            open_nodes.add(key)
            stack.append((node, depth))
            for child in children:
                if id(child) in open_nodes:
                    raise _DocumentError(
                        problem="recursive alias (an alias refers to a node that contains it)",
                        problem_mark=child.start_mark,
                    )
                if id(child) not in size:
                    stack.append((child, depth + 1))
            continue
        open_nodes.discard(key)
        total = 1 + sum(size[id(c)] for c in children)
        if total > MAX_EXPANDED_NODES:
            raise _DocumentError(
                problem=f"aliases expand to more than {MAX_EXPANDED_NODES} nodes (an alias bomb?)",
                problem_mark=node.start_mark,
            )
        size[key] = total


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of the YAML file ``path``; anything refused is one ``ConfigError`` naming it."""
    try:
        data_bytes = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration: {exc.strerror or exc}") from None
    try:
        text = data_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data_bytes.count(b"\n", 0, exc.start) + 1
        raise ConfigError(
            f"{path}:{line}: not UTF-8 text (byte 0x{data_bytes[exc.start]:02x} at offset {exc.start}); "
            "save the file as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictYamlLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{where}: invalid YAML: {problem}") from None
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: top-level key {key!r} is not a string")
    return data
