"""Reading `.rr.yaml` the way RoadRunner's config plugin does, up to a validated ``RRConfig``.

Owns the steps before the schema: ``--dotenv`` and ``envfile`` (KEY=VALUE files
feeding the expansion environment), ``${VAR}`` / ``$VAR`` / ``${VAR:-default}`` expansion in every
string (an unset VAR without default is noted), ``include`` files, ``-o section.key=value`` overrides
and the version gate. The schema (``schema.py``) does the typing and validation.

Each file is read by ``yamlfile.read_yaml``, which refuses what yaml.v3 refuses (duplicate keys,
alias bombs, non-UTF-8 text).

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

from rrgrpc.config.compat import Notes
from rrgrpc.config.decode import check_version, config_from_dict
from rrgrpc.config.schema import RRConfig
from rrgrpc.config.yamlfile import read_yaml
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
    tree = read_yaml(main)

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
        raw = read_yaml(path)
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
