"""gRPC transports: TLS, mTLS (client_auth_type), unix socket listen, and bind errors.

Certificates are made per test with the openssl CLI (a CA, a server certificate for 127.0.0.1 and
a client certificate), so nothing secret is stored in the repository.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from rrgrpc.errors import ConfigError
from tests.helpers import running_host
from tests.integration.test_grpc import MetaRequest, PingRequest, config, rpc_error, serve

pytestmark = [pytest.mark.php, pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl CLI")]


@dataclass
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def client(self, with_cert: bool) -> grpc.ChannelCredentials:
        if not with_cert:
            return grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes())
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca.read_bytes(),
            private_key=self.client_key.read_bytes(),
            certificate_chain=self.client_cert.read_bytes(),
        )


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=rrgrpc test CA", cwd=tmp_path)
    for name, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"), ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN=rrgrpc {name}", cwd=tmp_path)
        (tmp_path / f"{name}.ext").write_text(ext + "\n")
        _openssl(
            "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "1", "-extfile", f"{name}.ext", cwd=tmp_path,
        )
    return Certs(tmp_path / "ca.crt", tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "client.crt", tmp_path / "client.key")


async def test_tls(certs: Certs) -> None:
    tls = {"cert": str(certs.server_cert), "key": str(certs.server_key)}
    async with serve(workers=1, credentials=certs.client(False), tls=tls) as s:
        reply = await s.echo.Meta(MetaRequest(msg="tls", mode="plain"), timeout=10)
        assert reply.metadata[":peer.auth-type"].values == ["tls"]
        insecure = grpc.aio.insecure_channel(s.target)
        async with insecure:
            err = await rpc_error(insecure.unary_unary("/echo.v1.Echo/Ping")(b"", timeout=5))
            assert err.code() == grpc.StatusCode.UNAVAILABLE


async def test_mtls_requires_a_client_certificate_signed_by_root_ca(certs: Certs) -> None:
    tls = {
        "cert": str(certs.server_cert),
        "key": str(certs.server_key),
        "root_ca": str(certs.ca),
        "client_auth_type": "require_and_verify_client_cert",
    }
    async with serve(workers=1, credentials=certs.client(True), tls=tls) as s:
        reply = await s.echo.Ping(PingRequest(msg="mtls"), timeout=10)
        assert reply.msg == "mtls"
        anonymous = grpc.aio.secure_channel(s.target, certs.client(False))
        async with anonymous:
            err = await rpc_error(anonymous.unary_unary("/echo.v1.Echo/Ping")(b"", timeout=5))
            assert err.code() == grpc.StatusCode.UNAVAILABLE


async def test_root_ca_without_required_client_auth_accepts_anonymous_clients(certs: Certs) -> None:
    tls = {"cert": str(certs.server_cert), "key": str(certs.server_key), "root_ca": str(certs.ca)}
    async with serve(workers=1, credentials=certs.client(False), tls=tls) as s:
        assert (await s.echo.Ping(PingRequest(msg="anon"), timeout=10)).msg == "anon"


async def test_missing_tls_file_fails_startup(tmp_path: Path) -> None:
    raw = config(1, tls={"cert": str(tmp_path / "nope.crt"), "key": str(tmp_path / "nope.key")})
    with pytest.raises(ConfigError, match="grpc.tls"):
        async with running_host(raw):
            pass


async def test_unix_socket_listen(tmp_path: Path) -> None:
    sock = tmp_path / "grpc.sock"
    async with serve(workers=1, listen=f"unix://{sock}") as s:
        assert s.target == f"unix:{sock}"
        reply = await s.echo.Meta(MetaRequest(msg="unix", mode="plain"), timeout=10)
        assert reply.msg == "unix"
        assert reply.metadata[":authority"].values == ["localhost"]


async def test_port_in_use_fails_startup_before_any_worker_starts() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match="cannot listen"):
            async with running_host(config(1, listen=f"tcp://127.0.0.1:{port}")):
                pass
