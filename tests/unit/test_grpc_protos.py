"""Proto loading: files, globs, imports, import paths, descriptor sets, compile errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from rrgrpc.errors import ConfigError
from rrgrpc.grpc.protos import load_protos
from tests.helpers import ROOT


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_echo_proto_services_methods_and_streaming_flags() -> None:
    ps = load_protos([str(ROOT / "proto/echo/v1/echo.proto")])
    assert [s.full_name for s in ps.services] == ["echo.v1.Echo"]
    methods = {m.name: m for m in ps.services[0].methods}
    assert methods["Ping"].input_type == "echo.v1.PingRequest"
    assert methods["Ping"].output_type == "echo.v1.PingReply"
    assert not methods["Ping"].streaming
    assert methods["Stream"].server_streaming and not methods["Stream"].client_streaming
    assert ps.pool.FindMessageTypeByName("echo.v1.MetaReply").fields_by_name["timeout_ms"].number == 8


def test_imports_resolve_next_to_the_importing_file_and_their_services_are_served(tmp_path: Path) -> None:
    write(tmp_path / "common.proto", """
        syntax = "proto3";
        package common;
        import "google/protobuf/empty.proto";
        message Id { string id = 1; }
        service Admin { rpc Ping(google.protobuf.Empty) returns (google.protobuf.Empty); }
    """)
    main = write(tmp_path / "main.proto", """
        syntax = "proto3";
        package app.v1;
        import "common.proto";
        service Users { rpc Get(common.Id) returns (common.Id); rpc Chat(stream common.Id) returns (stream common.Id); }
    """)
    ps = load_protos([main.name], base_dir=tmp_path)
    assert {s.full_name for s in ps.services} == {"app.v1.Users", "common.Admin"}
    users = next(s for s in ps.services if s.full_name == "app.v1.Users")
    chat = next(m for m in users.methods if m.name == "Chat")
    assert chat.client_streaming and chat.server_streaming
    assert "google/protobuf/empty.proto" in ps.files  # well-known types come from grpcio-tools


def test_import_paths_and_double_star_globs(tmp_path: Path) -> None:
    write(tmp_path / "lib/shared/v1/types.proto", """
        syntax = "proto3";
        package shared.v1;
        message Money { int64 units = 1; }
    """)
    write(tmp_path / "api/billing/v1/billing.proto", """
        syntax = "proto3";
        package billing.v1;
        import "shared/v1/types.proto";
        service Billing { rpc Charge(shared.v1.Money) returns (shared.v1.Money); }
    """)
    write(tmp_path / "api/deep/x/y/z.proto", """
        syntax = "proto3";
        package deep;
        service Z { rpc Do(Z1) returns (Z1); }
        message Z1 {}
    """)
    ps = load_protos(["api/**/*.proto"], ["lib"], base_dir=tmp_path)
    assert {s.full_name for s in ps.services} == {"billing.v1.Billing", "deep.Z"}
    assert "shared/v1/types.proto" in ps.files
    ps2 = load_protos([str(tmp_path / "api/{billing,deep}/**/*.proto")], [str(tmp_path / "lib")])
    assert {s.full_name for s in ps2.services} == {"billing.v1.Billing", "deep.Z"}


def test_a_missing_import_path_root_fails(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="import_paths"):
        load_protos([], ["nope"], base_dir=tmp_path)


def test_compile_error_carries_protocs_message_and_the_file_name(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.proto", """
        syntax = "proto3";
        package bad;
        message A { int32 a = 1 }
    """)
    with pytest.raises(ConfigError) as err:
        load_protos([str(bad)])
    text = str(err.value)
    assert "bad.proto" in text and "does not compile" in text
    assert 'Expected ";"' in text  # protoc's own words, with line:column


def test_unknown_import_fails_with_protocs_message(tmp_path: Path) -> None:
    bad = write(tmp_path / "b.proto", """
        syntax = "proto3";
        import "missing/thing.proto";
    """)
    with pytest.raises(ConfigError, match="missing/thing.proto"):
        load_protos([str(bad)])


def test_missing_file_and_empty_glob_fail(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_protos(["nope.proto"], base_dir=tmp_path)
    with pytest.raises(ConfigError, match="matches no file"):
        load_protos(["**/*.proto"], base_dir=tmp_path)


def test_compiled_descriptor_set_is_accepted(tmp_path: Path) -> None:
    out = tmp_path / "echo.binpb"
    subprocess.run(
        ["protoc", f"-I{ROOT / 'proto'}", "--include_imports", f"--descriptor_set_out={out}", "echo/v1/echo.proto"],
        check=True,
    )
    ps = load_protos([str(out)])
    assert [s.full_name for s in ps.services] == ["echo.v1.Echo"]
    assert ps.pool.FindServiceByName("echo.v1.Echo").methods_by_name["Big"].input_type.full_name == "echo.v1.BigRequest"


def test_garbage_descriptor_set_fails(tmp_path: Path) -> None:
    bad = tmp_path / "x.pb"
    bad.write_bytes(b"\xff\xff\xff\xff")
    with pytest.raises(ConfigError, match="descriptor set"):
        load_protos([str(bad)])


def test_same_file_from_two_sources_is_loaded_once(tmp_path: Path) -> None:
    out = tmp_path / "echo.pb"
    subprocess.run(
        ["protoc", f"-I{ROOT / 'proto'}", "--include_imports", f"--descriptor_set_out={out}", "echo/v1/echo.proto"],
        check=True,
    )
    ps = load_protos([str(out), "echo/v1/echo.proto"], [str(ROOT / "proto")], base_dir=ROOT / "proto")
    assert [s.full_name for s in ps.services] == ["echo.v1.Echo"]


def test_extra_files_are_in_the_pool_but_not_served() -> None:
    from grpc_health.v1 import health_pb2

    extra = [descriptor_pb2.FileDescriptorProto.FromString(health_pb2.DESCRIPTOR.serialized_pb)]
    ps = load_protos([str(ROOT / "proto/greeter/v1/greeter.proto")], extra=extra)
    assert [s.full_name for s in ps.services] == ["greeter.v1.Greeter"]
    assert ps.pool.FindServiceByName("grpc.health.v1.Health").full_name == "grpc.health.v1.Health"


# ---------------------------------------------------------------------------------- the compile cache

_LOAD_TWICE = """
import sys
from rrgrpc.grpc.protos import load_protos
ps = load_protos([sys.argv[1]])
print([s.full_name for s in ps.services], "grpc_tools.protoc" in sys.modules)
"""


def entries(cache: Path) -> list[Path]:
    return sorted((cache / "rrgrpc" / "protoc").glob("[0-9a-f]*"))


def test_a_warm_start_takes_the_set_from_the_cache_without_loading_protoc(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    argv = [sys.executable, "-c", _LOAD_TWICE, str(ROOT / "proto/echo/v1/echo.proto")]
    cold = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=60)
    assert cold.stdout.split() == ["['echo.v1.Echo']", "True"]  # compiled: protoc loaded
    assert len(entries(tmp_path / "cache")) == 1
    warm = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=60)
    assert warm.stdout.split() == ["['echo.v1.Echo']", "False"]  # from the cache: protoc never loaded


def test_an_edited_import_is_compiled_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    common = write(tmp_path / "p/common.proto", 'syntax = "proto3";\npackage c;\nmessage Id { string id = 1; }\n')
    main = write(tmp_path / "p/main.proto", """
        syntax = "proto3";
        package m;
        import "common.proto";
        service S { rpc Get(c.Id) returns (c.Id); }
    """)
    first = load_protos([str(main)])
    assert list(first.pool.FindMessageTypeByName("c.Id").fields_by_name) == ["id"]
    common.write_text('syntax = "proto3";\npackage c;\nmessage Id { string id = 1; int64 rev = 2; }\n')
    again = load_protos([str(main)])
    assert list(again.pool.FindMessageTypeByName("c.Id").fields_by_name) == ["id", "rev"]
    assert len(entries(tmp_path / "cache")) == 1  # the same entry, rewritten


def test_an_import_newly_shadowed_by_an_import_path_is_compiled_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write(tmp_path / "p/common.proto", 'syntax = "proto3";\npackage c;\nmessage Id { string id = 1; }\n')
    main = write(tmp_path / "p/main.proto", """
        syntax = "proto3";
        package m;
        import "common.proto";
        service S { rpc Get(c.Id) returns (c.Id); }
    """)
    (tmp_path / "lib").mkdir()
    first = load_protos([str(main)], [str(tmp_path / "lib")])
    assert list(first.pool.FindMessageTypeByName("c.Id").fields_by_name) == ["id"]
    # import_paths come before the importing file's directory: protoc now reads this one
    write(tmp_path / "lib/common.proto", 'syntax = "proto3";\npackage c;\nmessage Id { bytes key = 7; }\n')
    again = load_protos([str(main)], [str(tmp_path / "lib")])
    assert list(again.pool.FindMessageTypeByName("c.Id").fields_by_name) == ["key"]


def test_an_unreadable_entry_is_compiled_again_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    echo = str(ROOT / "proto/echo/v1/echo.proto")
    load_protos([echo])
    [entry] = entries(tmp_path / "cache")
    entry.write_bytes(b'{"sources": {}, "set": "not base64!"}')
    ps = load_protos([echo])
    assert [s.full_name for s in ps.services] == ["echo.v1.Echo"]
    assert list(json.loads(entry.read_bytes())["sources"]) == ["echo.proto"]  # a whole entry again


def test_a_cache_directory_others_may_write_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shared = tmp_path / "cache/rrgrpc/protoc"
    shared.mkdir(parents=True)
    shared.chmod(0o777)  # someone else could plant an entry that changes the served services
    ps = load_protos([str(ROOT / "proto/echo/v1/echo.proto")])
    assert [s.full_name for s in ps.services] == ["echo.v1.Echo"]
    assert entries(tmp_path / "cache") == []
