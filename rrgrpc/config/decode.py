"""From a plain config dict to the validated ``RRConfig``, with one clear line for what is wrong.

Owns ``config_from_dict``: the version gate, ``compat``'s reshaping of each section as RoadRunner's
viper would (dropping the keys it ignores, with a note, so ``forbid_unknown_fields`` is only a guard),
msgspec's lax decoding into the ``schema`` Structs, and the translation of msgspec's
``ValidationError`` into ``ConfigError("<file>: <dotted.key>: ...")``.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import msgspec

from rrgrpc.config.compat import Notes, check_sections, normalize, without_none
from rrgrpc.config.schema import BROKER_SECTIONS, HTTP_MIDDLEWARE, LOADER_KEYS, SECTIONS, RRConfig
from rrgrpc.config.types import StrList, dec_hook
from rrgrpc.errors import ConfigError


def check_version(raw: dict[str, Any], source: str) -> str:
    """The configuration version: "3" (a YAML number 3 is accepted too), anything else is an error."""
    version = raw.get("version")
    if version is None:
        raise ConfigError(f'{source}: version: required, set version: "3"')
    if version != "3" and not (isinstance(version, int) and not isinstance(version, bool) and version == 3):
        raise ConfigError(
            f'{source}: version: expected "3" (the only configuration version rrgrpc reads), got {version!r}'
        )
    return "3"


def _drop_none(value: Any) -> Any:
    """An empty YAML key (``user:``) means "not set": drop it so the field default applies."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _resolve(raw: dict[str, Any], path: str) -> tuple[str, bool, Any, Any]:
    """msgspec's ``$.a.b[...].c`` -> ``("a.b.<key>.c", found, value, schema type there)``.

    msgspec does not say which mapping entry failed (``[...]``); walking the schema types along the
    path and converting each entry of that mapping on its own finds it.
    """
    tp: Any = RRConfig
    node: Any = raw
    found = True
    dotted = ""
    for m in _PATH_PART.finditer(path):
        key, index = m.group(1), m.group(2)
        tp = without_none(tp)
        if key is not None:
            dotted += f".{key}"
            is_struct = isinstance(tp, type) and issubclass(tp, msgspec.Struct)
            tp = typing.get_type_hints(tp).get(key, Any) if is_struct else Any
            found = found and isinstance(node, dict) and key in node
            node = node[key] if found else None
        elif index != "...":
            dotted += f"[{index}]"
            tp = typing.get_args(tp)[0] if typing.get_origin(tp) is list else Any
            found = found and isinstance(node, list) and int(index) < len(node)
            node = node[int(index)] if found else None
        else:
            tp = typing.get_args(tp)[1] if typing.get_origin(tp) is dict else Any
            bad = (
                [k for k, v in node.items() if not _converts(v, tp)]
                if found and isinstance(node, dict)
                else []
            )
            found = bool(bad)
            dotted += f".{bad[0]}" if found else "[...]"
            node = node[bad[0]] if found else None
    return dotted.lstrip("."), found, node, without_none(tp)


def _converts(value: Any, tp: Any) -> bool:
    try:
        msgspec.convert(_drop_none(value), tp, strict=False, dec_hook=dec_hook)
    except msgspec.ValidationError:
        return False
    return True


# msgspec's ValidationError carries its path only in its text. These patterns read the forms msgspec
# writes; ``test_msgspec_error_forms_are_the_ones_we_read`` (tests/unit/test_config.py) makes msgspec
# write each form and fails loudly if a msgspec upgrade rewords one, rather than letting the messages
# quietly lose the key. (Re-validating with a walk of our own would duplicate msgspec's decoding.)
_MSG = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_EXPECTED = re.compile(r"^Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_ENUM = "Invalid enum value"


def _format_error(exc: msgspec.ValidationError, raw: dict[str, Any], source: str) -> ConfigError:
    m = _MSG.match(str(exc))
    assert m is not None  # the pattern matches any string
    msg = m.group("msg")
    dotted, found, value, tp = _resolve(raw, m.group("path") or "")
    if "\x1f" in msg:
        field, msg = msg.split("\x1f", 1)
        return ConfigError(f"{source}: {_join(dotted, field)}: {msg}")
    if mm := _MISSING.match(msg):
        return ConfigError(f"{source}: {_join(dotted, mm.group('field'))}: required")
    if em := _EXPECTED.match(msg):
        got = repr(value) if found else em.group("got")
        return ConfigError(f"{source}: {dotted}: expected {em.group('want')}, got {got}")
    if msg.startswith(_ENUM) and (allowed := _literals(tp)):
        return ConfigError(f"{source}: {dotted}: expected {allowed}, got {value!r}")
    if msg:
        msg = msg[0].lower() + msg[1:]
    return ConfigError(f"{source}: {dotted}: {msg}" if dotted else f"{source}: {msg}")


def _literals(tp: Any) -> str:
    """What a ``Literal`` (or a union holding one, as ``int | Literal["auto"]``) accepts, in words;
    empty when ``tp`` holds no literal."""
    members = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    words = [m.__name__ for m in members if isinstance(m, type)]
    literals = [a for m in members if typing.get_origin(m) is typing.Literal for a in typing.get_args(m) if a != ""]
    if not literals:
        return ""
    choice = repr(literals[0]) if len(literals) == 1 else "one of " + ", ".join(repr(a) for a in literals)
    return " or ".join([*(f"an {w}" if w[0] in "aeiou" else f"a {w}" for w in words), choice])


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def config_from_dict(
    raw: dict[str, Any], source: str = "<dict>", strict: bool = False, notes: Notes | None = None
) -> RRConfig:
    """Validate a plain config dict (no env expansion here) and build the frozen ``RRConfig``.

    What RoadRunner tolerates is tolerated (``compat.py``): unknown and unsupported keys and sections
    are dropped with a note in ``RRConfig.notes``, or raised with ``strict``. An empty known section
    means "present with defaults"; everything else that is wrong raises
    ``ConfigError("<source>: <dotted.key>: ...")``. ``notes`` carries what the loader already noted.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}")
    version = check_version(raw, source)
    notes = notes if notes is not None else Notes(source, strict)
    check_sections(raw, SECTIONS, LOADER_KEYS + BROKER_SECTIONS, notes)
    sections: dict[str, Any] = {}
    hints = typing.get_type_hints(RRConfig)
    for key in SECTIONS:
        if key not in raw:
            continue
        value = raw[key]
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a mapping, got {value!r}")
        if key == "http":
            value = _without_acme_only_ssl(value, notes)
        sections[key] = normalize(_drop_none(value), hints[key], key, notes)
    try:
        cfg = msgspec.convert(sections, RRConfig, strict=False, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise _format_error(exc, sections, source) from None
    cfg = _known_middleware(cfg, notes)
    brokers = {key: raw[key] for key in BROKER_SECTIONS if isinstance(raw.get(key), dict)}
    return msgspec.structs.replace(
        cfg, version=version, source=source, raw=raw, notes=tuple(notes.items), brokers=brokers
    )


def _without_acme_only_ssl(http: dict[str, Any], notes: Notes) -> dict[str, Any]:
    """``http.ssl`` with ``acme`` and no ``cert``/``key``: RoadRunner obtains the certificate; rrgrpc
    cannot, so the section goes (with the ``http.ssl.acme`` warning) and plain HTTP is still served."""
    ssl = http.get("ssl")
    if isinstance(ssl, dict) and "acme" in ssl and "cert" not in ssl and "key" not in ssl:
        notes.ignored_key("http.ssl.acme", "acme", ())
        return {k: v for k, v in http.items() if k != "ssl"}
    return http


def _known_middleware(cfg: RRConfig, notes: Notes) -> RRConfig:
    """RoadRunner warns about a middleware no plugin provides and serves without it; so does rrgrpc."""
    if cfg.http is None:
        return cfg
    known = [m for m in cfg.http.middleware if m in HTTP_MIDDLEWARE]
    for name in cfg.http.middleware:
        if name not in HTTP_MIDDLEWARE:
            notes.warn(f"http.middleware: unknown middleware {name!r}", f" (known: {', '.join(sorted(HTTP_MIDDLEWARE))})")
    if len(known) == len(cfg.http.middleware):
        return cfg
    return msgspec.structs.replace(cfg, http=msgspec.structs.replace(cfg.http, middleware=StrList(known)))


__all__ = ["check_version", "config_from_dict"]
