"""Proto loading: ``grpc.proto`` entries -> a private ``DescriptorPool`` and the services to serve.

Owns the startup step of the gRPC plugin that RoadRunner does with a ``.proto`` parser. Here the
files are compiled by grpcio-tools' bundled ``protoc``, in process, with ``--include_imports`` into a
``FileDescriptorSet``; the set is loaded into a *private* pool (never the process-wide default one,
so two configs or a user's own generated code cannot clash), which reflection then serves.

Rules:

* An entry containing any of ``*?[{`` is a glob (``**`` crosses directories, ``{a,b}`` alternates)
  and must match at least one file; any other entry must name an existing file.
* ``.pb``, ``.binpb``, ``.desc`` and ``.protoset`` entries are compiled descriptor sets (``protoc
  --descriptor_set_out --include_imports`` or ``buf build -o x.binpb``) and are loaded as they are.
* Imports resolve against ``grpc.import_paths`` first, then the importing file's directory (what
  RoadRunner does), then the well-known types bundled with grpcio-tools.
* Every service of every loaded file is served, including services of imported files (RoadRunner
  registers those too). A file that fails to compile raises ``ConfigError`` with protoc's message,
  which names the file and line.
* Relative paths are relative to the working directory (``rr serve -w`` changes it), as in RoadRunner.

Compiled sets are cached in ``$XDG_CACHE_HOME/rrgrpc/protoc`` (``~/.cache/rrgrpc/protoc``), one
entry per file, protoc version and include path list, holding the SHA-256 of every file the
compile read, each found again as protoc finds it (the first ``-I`` holding its import name). An
entry is used only when all of them still match, so an edited or newly shadowing import compiles
again; a warm start then neither loads grpcio-tools' protoc (8 MB of code, ~8 MiB of RSS) nor
runs it. A cache directory not owned by this user, or writable by others, is not used; neither
is an entry that does not parse. Failing to write an entry is logged at debug level, never fatal.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import hashlib
import json
import logging
import os
import re
import stat
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.message import DecodeError

from rrgrpc.errors import ConfigError

__all__ = ["MethodSpec", "ServiceSpec", "ProtoSet", "load_protos", "DESCRIPTOR_SET_SUFFIXES"]

DESCRIPTOR_SET_SUFFIXES = (".pb", ".binpb", ".desc", ".protoset")
_GLOB_CHARS = re.compile(r"[*?\[{]")
log = logging.getLogger("rr.grpc")


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One rpc of a service, with the full type names of its messages (no leading dot)."""

    name: str
    input_type: str
    output_type: str
    client_streaming: bool = False
    server_streaming: bool = False

    @property
    def streaming(self) -> bool:
        return self.client_streaming or self.server_streaming


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service to register: full name ``package.Service`` and the file that defines it."""

    full_name: str
    file: str
    methods: tuple[MethodSpec, ...]


@dataclass(frozen=True, slots=True)
class ProtoSet:
    """The result of loading: the private pool, the services in load order, and the file names."""

    pool: descriptor_pool.DescriptorPool
    services: tuple[ServiceSpec, ...]
    files: tuple[str, ...]


def load_protos(
    sources: Sequence[str],
    import_paths: Sequence[str] = (),
    *,
    base_dir: Path | None = None,
    extra: Iterable[descriptor_pb2.FileDescriptorProto] = (),
) -> ProtoSet:
    """Compile or read every source and return the pool and services.

    Args:
        sources: ``grpc.proto`` entries (files, globs, descriptor sets); empty strings are skipped.
        import_paths: extra ``-I`` roots, searched before the importing file's directory.
        base_dir: what relative paths are relative to (default: the working directory).
        extra: files added to the pool after the sources without serving their services (the
            plugin adds health and reflection so that reflection can describe them).

    Raises:
        ConfigError: a missing file, a glob matching nothing, a compile error (protoc's text),
            an unreadable descriptor set, or two different files with the same import name.
    """
    base = base_dir or Path.cwd()
    roots = [_resolve(base, p) for p in import_paths]
    for root in roots:
        if not root.is_dir():
            raise ConfigError(f"grpc.import_paths: {root} is not a directory")
    files: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    for path in _expand(sources, base):
        if path.suffix in DESCRIPTOR_SET_SUFFIXES:
            fds = _read_descriptor_set(path)
        else:
            fds = _compile(path, roots)
        for fd in fds.file:
            _merge(files, fd, path)
    served = list(files)
    for fd in extra:
        files.setdefault(fd.name, fd)
    pool = descriptor_pool.DescriptorPool()
    for fd in files.values():
        try:
            pool.Add(fd)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"grpc.proto: {fd.name}: cannot be loaded: {exc}") from exc
    services: list[ServiceSpec] = []
    seen: dict[str, str] = {}
    for name in served:
        fd = files[name]
        package = f"{fd.package}." if fd.package else ""
        for svc in fd.service:
            full = package + svc.name
            if full in seen:  # the pool already rejects this; kept as a clear message
                raise ConfigError(f"grpc.proto: service {full} is defined in {seen[full]} and {name}")
            seen[full] = name
            methods = tuple(
                MethodSpec(
                    name=m.name,
                    input_type=m.input_type.lstrip("."),
                    output_type=m.output_type.lstrip("."),
                    client_streaming=m.client_streaming,
                    server_streaming=m.server_streaming,
                )
                for m in svc.method
            )
            services.append(ServiceSpec(full_name=full, file=name, methods=methods))
    return ProtoSet(pool=pool, services=tuple(services), files=tuple(files))


def wkt_include() -> Path:
    """The directory of the well-known ``google/protobuf/*.proto`` files shipped with grpcio-tools."""
    import grpc_tools  # the package alone: an empty __init__ (importlib.resources would load zipfile)

    return Path(grpc_tools.__file__).parent / "_proto"


def _resolve(base: Path, entry: str) -> Path:
    path = Path(os.path.expanduser(entry))
    return path if path.is_absolute() else base / path


def _expand(sources: Sequence[str], base: Path) -> list[Path]:
    out: list[Path] = []
    for entry in sources:
        if not entry:
            continue
        if _GLOB_CHARS.search(entry):
            pattern = str(_resolve(base, entry))
            matches = sorted(
                {Path(m) for alt in _braces(pattern) for m in glob.glob(alt, recursive=True)}
            )
            matches = [m for m in matches if m.is_file()]
            if not matches:
                raise ConfigError(f"grpc.proto: {entry!r} matches no file (relative to {base})")
            out.extend(matches)
        else:
            path = _resolve(base, entry)
            if not path.is_file():
                raise ConfigError(f"grpc.proto: proto file {str(path)!r} does not exist")
            out.append(path)
    unique: dict[Path, None] = {}
    for p in out:
        unique.setdefault(p.resolve(), None)
    return list(unique)


def _braces(pattern: str) -> list[str]:
    """Expand ``{a,b}`` alternatives (nested ones too) into plain glob patterns."""
    start = pattern.find("{")
    if start < 0:
        return [pattern]
    depth = 0
    for end in range(start, len(pattern)):
        if pattern[end] == "{":
            depth += 1
        elif pattern[end] == "}":
            depth -= 1
            if depth == 0:
                break
    else:
        return [pattern]  # unbalanced: let glob treat it literally
    inner, parts, level, last = pattern[start + 1 : end], [], 0, 0
    for i, ch in enumerate(inner):
        if ch == "{":
            level += 1
        elif ch == "}":
            level -= 1
        elif ch == "," and level == 0:
            parts.append(inner[last:i])
            last = i + 1
    parts.append(inner[last:])
    head, tail = pattern[:start], pattern[end + 1 :]
    return [x for part in parts for x in _braces(head + part + tail)]


def _read_descriptor_set(path: Path) -> descriptor_pb2.FileDescriptorSet:
    fds = descriptor_pb2.FileDescriptorSet()
    try:
        fds.ParseFromString(path.read_bytes())
    except (DecodeError, OSError) as exc:
        raise ConfigError(f"grpc.proto: {path}: not a readable descriptor set: {exc}") from exc
    if not fds.file:
        raise ConfigError(f"grpc.proto: {path}: the descriptor set holds no file")
    return fds


def _compile(path: Path, roots: Sequence[Path]) -> descriptor_pb2.FileDescriptorSet:
    """The cached set of ``path`` when every file it was compiled from is unchanged, else protoc's."""
    includes = [*roots, path.parent, wkt_include()]
    cache = _cache_dir()
    entry = cache / _cache_key(path, includes) if cache else None
    if entry is not None:
        fds = _cached(entry, includes)
        if fds is not None:
            log.debug("proto taken from the cache", extra={"file": str(path), "entry": entry.name})
            return fds
    began = time.monotonic()
    fds = _protoc(path, includes)
    log.debug("proto compiled", extra={"file": str(path), "ms": round((time.monotonic() - began) * 1000)})
    if entry is not None:
        _store(entry, fds, includes)
    return fds


def _cache_dir() -> Path | None:
    """The cache directory, made private if missing; None when it cannot be trusted or made."""
    home = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(home):  # unset, empty or relative: the XDG spec's default
        home = os.path.join(os.path.expanduser("~"), ".cache")
    where = Path(home) / "rrgrpc" / "protoc"
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = where.stat()
    except OSError as exc:
        log.debug("proto cache %s not used: %s", where, exc.strerror or exc)
        return None
    if st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        log.debug("proto cache %s not used: not owned by uid %d, or writable by others", where, os.getuid())
        return None
    return where


def _cache_key(path: Path, includes: Sequence[Path]) -> str:
    from grpc_tools.grpc_version import VERSION  # a one-line module: protoc itself is not loaded

    return hashlib.sha256(json.dumps([VERSION, str(path), [str(i) for i in includes]]).encode()).hexdigest()


def _sources(fds: descriptor_pb2.FileDescriptorSet, includes: Sequence[Path]) -> dict[str, str] | None:
    """Import name -> SHA-256 of the file protoc would read for it (the first include holding it)."""
    out: dict[str, str] = {}
    for fd in fds.file:
        for root in includes:
            try:
                out[fd.name] = hashlib.sha256((root / fd.name).read_bytes()).hexdigest()
                break
            except OSError:
                continue
        else:
            return None
    return out


def _cached(entry: Path, includes: Sequence[Path]) -> descriptor_pb2.FileDescriptorSet | None:
    try:
        stored = json.loads(entry.read_bytes())
        fds = descriptor_pb2.FileDescriptorSet.FromString(base64.b64decode(stored["set"], validate=True))
        fresh = stored["sources"] == _sources(fds, includes)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, DecodeError) as exc:
        log.debug("proto cache entry %s unreadable, compiling again: %s", entry, exc)
        return None
    return fds if fresh else None


def _store(entry: Path, fds: descriptor_pb2.FileDescriptorSet, includes: Sequence[Path]) -> None:
    sources = _sources(fds, includes)
    if sources is None:
        return
    import tempfile

    data = json.dumps({"sources": sources, "set": base64.b64encode(fds.SerializeToString()).decode()}).encode()
    tmp = ""
    try:
        with tempfile.NamedTemporaryFile(dir=entry.parent, prefix=".tmp-", delete=False) as f:
            tmp = f.name
            f.write(data)
        os.replace(tmp, entry)  # readers see the old entry or the new one, never half of one
    except OSError as exc:
        log.debug("proto cache entry %s not written: %s", entry, exc.strerror or exc)
        if tmp:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _protoc(path: Path, includes: Sequence[Path]) -> descriptor_pb2.FileDescriptorSet:
    """Run grpcio-tools' protoc in process; its stderr (fd 2) is captured for the error message."""
    import tempfile

    from grpc_tools import protoc

    with tempfile.TemporaryDirectory(prefix="rr-protoc-") as tmp:
        out = Path(tmp) / "set.pb"
        args = ["protoc", *(f"-I{p}" for p in includes), "--include_imports"]
        args += [f"--descriptor_set_out={out}", str(path)]
        with tempfile.TemporaryFile() as err:
            saved = os.dup(2)
            try:
                os.dup2(err.fileno(), 2)
                rc = protoc.main(args)
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            err.seek(0)
            message = err.read().decode("utf-8", "replace").strip()
        if rc != 0 or not out.exists():
            raise ConfigError(f"grpc.proto: {path}: does not compile: {message or f'protoc exit code {rc}'}")
        fds = descriptor_pb2.FileDescriptorSet()
        fds.ParseFromString(out.read_bytes())
        return fds


def _merge(
    files: dict[str, descriptor_pb2.FileDescriptorProto], fd: descriptor_pb2.FileDescriptorProto, src: Path
) -> None:
    """Add ``fd`` unless a file of that import name is already there (it must then be identical)."""
    have = files.get(fd.name)
    if have is None:
        files[fd.name] = fd
        return
    if _comparable(have) != _comparable(fd):
        raise ConfigError(
            f"grpc.proto: {src}: {fd.name!r} is also loaded from another source with different "
            "content; give both the same import root (grpc.import_paths)"
        )


def _comparable(fd: descriptor_pb2.FileDescriptorProto) -> bytes:
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(fd)
    copy.ClearField("source_code_info")
    return copy.SerializeToString(deterministic=True)
