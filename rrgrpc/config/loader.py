"""Reading `.rr.yaml` the way RoadRunner's config plugin does, up to a validated ``RRConfig``.

Owns the steps before the schema: YAML reading (a safe loader with YAML 1.2 scalars, like Go's yaml.v3), ``--dotenv`` and ``envfile`` (KEY=VALUE files
feeding the expansion environment), ``${VAR}`` / ``$VAR`` / ``${VAR:-default}`` expansion in every
string (an unset VAR without default is noted), ``include`` files, ``-o section.key=value`` overrides
and the version gate. The schema (``schema.py``) does the typing and validation.

The YAML reader refuses what yaml.v3 refuses and PyYAML accepts: a mapping key defined twice, and
alias graphs that are recursive or expand past ``MAX_EXPANDED_NODES``; also non-UTF-8 files and
collections nested deeper than ``MAX_DEPTH``. Each is one ``ConfigError`` naming the file and line.

Order: read -> env files -> expand -> version -> include -> overrides -> schema. RoadRunner applies
``include`` after ``-o``; here ``-o`` is last so that the command line always wins.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from rrgrpc.config.compat import Notes
from rrgrpc.config.decode import check_version, config_from_dict
from rrgrpc.config.schema import RRConfig
from rrgrpc.errors import ConfigError

__all__ = ["apply_override", "expand", "expand_tree", "load_config", "read_dotenv", "unset_variables"]

_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def expand(value: str, env: Mapping[str, str]) -> str:
    """Expand ``${VAR}``, ``$VAR`` and ``${VAR:-default}`` (the default applies when VAR is unset or
    empty). An unset VAR without a default becomes "". A ``$`` not followed by a name stays as it is."""

    def sub(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        found = env.get(name, "")
        if not found and m.group("default") is not None:
            return m.group("default")
        return found

    return _VAR.sub(sub, value) if "$" in value else value


#: Where a value sits in the tree: mapping keys and list indexes from the top (``("server", "env", "DB")``).
KeyPath = tuple[str | int, ...]


def expand_tree(node: Any, env: Mapping[str, str], written: dict[KeyPath, str] | None = None, at: Any = None) -> Any:
    """``expand`` every string in a YAML tree: mapping values and list items, at any depth (not keys).

    With ``written``, each string that referred to a variable is recorded there, by its path, as it
    was written (``--db-password=${DB_PASS}``): ``rpc.Config`` shows that instead of the value.
    ``at`` is the node's place as nested ``(parent, key)`` pairs (cheap to make; flattened only for
    the strings recorded).
    """
    if isinstance(node, str):
        if written is not None and "$" in node and _VAR.search(node):
            written[_flatten(at)] = node
        return expand(node, env)
    if isinstance(node, dict):
        return {k: expand_tree(v, env, written, (at, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [expand_tree(v, env, written, (at, i)) for i, v in enumerate(node)]
    return node


def unset_variables(node: Any, env: Mapping[str, str], path: str = "") -> dict[str, list[str]]:
    """``{dotted key: [VAR, ...]}`` for the ``${VAR}``/``$VAR`` without a default whose VAR is not set
    at all: they expand to "" (as in RoadRunner), which is rarely what the user meant."""
    found: dict[str, list[str]] = {}
    if isinstance(node, str) and "$" in node:
        names = [
            m.group("braced") or m.group("bare")
            for m in _VAR.finditer(node)
            if m.group("default") is None and (m.group("braced") or m.group("bare")) not in env
        ]
        if names:
            found[path] = list(dict.fromkeys(names))
    elif isinstance(node, dict):
        for key, value in node.items():
            found.update(unset_variables(value, env, f"{path}.{key}" if path else str(key)))
    elif isinstance(node, list):
        for value in node:
            for key, names in unset_variables(value, env, path).items():
                found[key] = list(dict.fromkeys(found.get(key, []) + names))
    return found


def _flatten(at: Any) -> KeyPath:
    keys: list[str | int] = []
    while at is not None:
        at, key = at
        keys.append(key)
    return tuple(reversed(keys))


_DOTENV_LINE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_.]*)\s*=\s*(?P<value>.*?)\s*$")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


def read_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=VALUE`` lines, optional ``export``, ``#`` comments, blank lines,
    'single' (literal) or "double" (\\n, \\t, \\", \\\\ escapes) quoted values, ``VALUE # comment``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read env file: {exc.strerror or exc}") from None
    result: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = _DOTENV_LINE.match(line)
        if m is None:
            raise ConfigError(f"{path}:{lineno}: expected KEY=VALUE, got {stripped!r}")
        result[m.group("key")] = _dotenv_value(m.group("value"), f"{path}:{lineno}")
    return result


def _dotenv_value(raw: str, where: str) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        while quote == '"' and end != -1 and _escaped(raw, end):
            end = raw.find(quote, end + 1)
        if end == -1:
            raise ConfigError(f"{where}: unterminated {quote} quote")
        rest = raw[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError(f"{where}: unexpected text after the closing quote: {rest!r}")
        body = raw[1:end]
        if quote == "'":
            return body
        return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), body)
    comment = re.search(r"\s#", raw)
    return raw[: comment.start()].rstrip() if comment else raw


def _escaped(text: str, index: int) -> bool:
    backslashes = 0
    while index - 1 - backslashes >= 0 and text[index - 1 - backslashes] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def apply_override(
    tree: dict[str, Any], override: str, env: Mapping[str, str], written: dict[KeyPath, str] | None = None
) -> None:
    """Apply one ``-o section.key=value`` in place. As in RoadRunner, the value stays a string (the
    schema coerces "4" to 4 and splits "a.proto,b.proto" for list keys), surrounding quotes are
    removed and ``${VAR}`` in it is expanded. Missing intermediate mappings are created. ``written``
    is kept up to date as in :func:`expand_tree`."""
    key, sep, value = override.strip().partition("=")
    key, value = key.strip(" \t\n\"'`"), value.strip()
    if not sep or not key:
        raise ConfigError(f"-o {override!r}: expected section.key=value")
    if not value:
        raise ConfigError(f"-o {override!r}: the value is empty")
    if value[0] in "\"'`" and len(value) >= 2 and value[-1] == value[0]:
        value = value[1:-1].replace("\\" + value[0], value[0])
    parts = key.split(".")
    if any(not p for p in parts):
        raise ConfigError(f"-o {override!r}: malformed key {key!r}")
    node = tree
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    if written is not None:
        _forget(written, tuple(parts))
    at: Any = None
    for part in parts:
        at = (at, part)
    node[parts[-1]] = expand_tree(value, env, written, at)


def _forget(written: dict[KeyPath, str], prefix: KeyPath) -> None:
    """Drop the records of values at or under ``prefix`` (they were replaced)."""
    for path in [p for p in written if p[: len(prefix)] == prefix]:
        del written[path]


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


def _read_yaml(path: Path) -> dict[str, Any]:
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


def _relative(base: Path, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() else base / path


def load_config(
    path: str | os.PathLike[str],
    overrides: Iterable[str] = (),
    dotenv: str | os.PathLike[str] | None = None,
    workdir: str | os.PathLike[str] | None = None,
    strict: bool = False,
) -> RRConfig:
    """Load, expand, override and validate a configuration file.

    ``workdir`` only anchors a relative ``path`` and ``dotenv`` (as if ``rr -w`` had already changed
    directory); nothing changes directory here and relative paths inside the config stay relative.
    The expansion environment is ``os.environ``, then ``--dotenv``, then ``envfile`` entries, the first
    to define a name winning (RoadRunner loads env files without overwriting existing variables).
    ``os.environ`` itself is not modified; ``read_dotenv`` is there for a caller that wants to export.
    ``strict`` makes every warning about the file (unknown key, unsupported section) an error.
    """
    base = Path(workdir) if workdir is not None else Path()
    main = _relative(base, os.fspath(path))
    source = str(main)
    tree = _read_yaml(main)

    env: dict[str, str] = dict(os.environ)
    if dotenv is not None:
        for k, v in read_dotenv(_relative(base, os.fspath(dotenv))).items():
            env.setdefault(k, v)
    envfile = tree.get("envfile")
    if envfile is not None:
        if not isinstance(envfile, str) or not envfile:
            raise ConfigError(f"{source}: envfile: expected a file name, got {envfile!r}")
        for k, v in read_dotenv(_relative(main.parent, expand(envfile, env))).items():
            env.setdefault(k, v)

    written: dict[KeyPath, str] = {}
    unset = unset_variables(tree, env)
    tree = expand_tree(tree, env, written)
    check_version(tree, source)
    tree = _merge_includes(tree, main, env, unset, written)
    notes = Notes(source, strict)
    for key, names in unset.items():
        notes.warn(f"{key}: {_dollars(names)} not set", outcome="expanded to an empty string, as RoadRunner does")
    for override in overrides:
        apply_override(tree, override, env, written)
    try:
        cfg = config_from_dict(tree, source=source, notes=notes)
    except ConfigError as exc:
        raise _blame_unset(exc, source, unset) from None
    return msgspec.structs.replace(cfg, interpolated=written)


def _dollars(names: list[str]) -> str:
    return " and ".join(f"${{{n}}}" for n in names) + (" is" if len(names) == 1 else " are")


def _blame_unset(exc: ConfigError, source: str, unset: Mapping[str, list[str]]) -> ConfigError:
    """A config error on a key whose value used an unset variable says so."""
    message = str(exc)
    for key, names in unset.items():
        if message.startswith((f"{source}: {key}:", f"{source}: {key}.")):
            return ConfigError(f"{message} ({_dollars(names)} not set)")
    return exc


def _merge_includes(
    tree: dict[str, Any],
    main: Path,
    env: Mapping[str, str],
    unset: dict[str, list[str]],
    written: dict[KeyPath, str],
) -> dict[str, Any]:
    """RoadRunner's ``include``: each listed file (relative to the main file) is read, expanded and
    laid over the configuration in list order; each of its top-level sections replaces the section
    of the same name. Each included file needs ``version: "3"`` too; ``include`` in it is not followed.
    ``unset`` (see ``unset_variables``) is kept in step: a replaced section's entries go, the
    included file's come."""
    include = tree.get("include")
    if include is None:
        return tree
    if isinstance(include, str):
        include = [include]
    if not isinstance(include, list) or not all(isinstance(i, str) and i for i in include):
        raise ConfigError(f"{main}: include: expected a list of file names, got {include!r}")
    merged = dict(tree)
    for name in include:
        path = _relative(main.parent, name)
        raw = _read_yaml(path)
        part_written: dict[KeyPath, str] = {}
        part = expand_tree(raw, env, part_written)
        check_version(part, str(path))  # "3", like the main file (RoadRunner requires them equal)
        found = unset_variables(raw, env)
        for key, value in part.items():
            if key not in ("version", "include"):
                merged[key] = value
                for dotted in [d for d in unset if d == key or d.startswith(key + ".")]:
                    del unset[dotted]
                unset.update({d: n for d, n in found.items() if d == key or d.startswith(key + ".")})
                _forget(written, (key,))
                written.update((p, text) for p, text in part_written.items() if p[0] == key)
    return merged
