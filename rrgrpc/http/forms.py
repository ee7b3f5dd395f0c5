"""PHP bracket-notation trees for form fields and uploaded files (PROTOCOL.md §5.4, §5.5).

``a=1&b[]=2&b[]=3&c[d]=4`` becomes ``{"a": "1", "b": ["2", "3"], "c": {"d": "4"}}``: a plain
key keeps its last value, a trailing ``[]`` keeps every value as a list, inner segments nest.
Conflicts (a value where an object is needed, or the other way round) raise ``FormError``;
empty values never overwrite data and give way to nested data that arrives later. The same
rules build the uploads tree, whose leaves are ``UploadedFile`` objects (first file wins).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

#: A key with more segments than this is ignored, as RoadRunner does.
MAX_LEVEL: Final = 127


class FormError(ValueError):
    """Conflicting form keys; the request is rejected (400)."""


class UploadedFile(msgspec.Struct):
    """One uploaded file as PHP sees it; member order is RoadRunner's."""

    name: str
    mime: str
    size: int = 0
    error: int = 0
    tmpName: str = ""  # noqa: N815 (wire name)


def split_key(key: str) -> list[str]:
    """``a[b][]`` -> ``["a", "b", ""]``; spaces are ignored, text after a ``]`` opens a segment."""
    segments = [""]
    inside = False
    closed = False
    for ch in key:
        if ch == " ":
            continue
        if ch == "[" and not inside:
            segments.append("")
            inside, closed = True, False
        elif ch == "]" and inside:
            inside, closed = False, True
        else:
            if closed:
                segments.append("")
                closed = False
            segments[-1] += ch
    return segments


def _empty(value: Any) -> bool:
    return value == "" or value == [] or (isinstance(value, list) and all(v == "" for v in value))


def _mount(tree: dict[str, Any], path: list[str], values: list[Any], key: str, files: bool) -> None:
    head = path[0]
    if len(path) == 1 or (len(path) == 2 and path[1] == ""):
        new: Any = values if len(path) == 2 else (values[0] if files else values[-1])
        old = tree.get(head)
        if isinstance(old, dict):
            if not files and _empty(new):
                return
            raise FormError(f"invalid multiple values to key {key!r}")
        if old is not None and not files and _empty(new):
            return
        if old is None or not files or len(path) == 2:
            tree[head] = new
        return
    node = tree.get(head)
    if node is None or (not files and _empty(node)):
        node = tree[head] = {}
    elif not isinstance(node, dict):
        raise FormError(f"invalid multiple values to key {key!r}")
    _mount(node, path[1:], values, key, files)


def build_tree(items: dict[str, list[Any]], *, files: bool = False) -> dict[str, Any]:
    """Fold ``{key: [values...]}`` (keys in arrival order) into the bracket tree."""
    tree: dict[str, Any] = {}
    for key, values in items.items():
        path = split_key(key)
        if len(path) > MAX_LEVEL or not values:
            continue
        _mount(tree, path, values, key, files)
    return tree


_encoder = msgspec.json.Encoder(order="deterministic")


def tree_json(tree: dict[str, Any]) -> bytes:
    """JSON with object keys sorted, as Go's encoder writes maps (file members keep their order)."""
    return _encoder.encode(tree)
