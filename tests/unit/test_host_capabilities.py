"""Host.having: a plugin provides a capability only by declaring it, and must implement what it declares."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import ClassVar

import pytest

from rrgrpc.config import config_from_dict
from rrgrpc.host import Host
from rrgrpc.plugin import HasWorkers, ManagesWorkers, Peers, Resettable, RpcProvider
from rrgrpc.roster import default_roster


class _Quiet:
    """A plugin with a public ``reset`` that declares nothing (an RPC service might look like this)."""

    name = "quiet"

    def __init__(self) -> None:
        self.resets = 0

    async def reset(self) -> None:
        self.resets += 1

    @asynccontextmanager
    async def _run(self) -> AsyncIterator[None]:
        yield

    def lifespan(self, peers: Peers) -> AbstractAsyncContextManager[None]:
        return self._run()


class _Declared(_Quiet):
    capabilities: ClassVar[tuple[type, ...]] = (Resettable,)
    name = "declared"


class _Boasting(_Quiet):
    capabilities: ClassVar[tuple[type, ...]] = (Resettable, ManagesWorkers)
    name = "boasting"


def test_a_matching_method_name_alone_provides_nothing() -> None:
    quiet, declared = _Quiet(), _Declared()
    host = Host([quiet, declared])
    assert host.having(Resettable) == [declared]  # _Quiet has reset() too, but did not declare it


def test_declaring_a_capability_the_class_lacks_fails_the_host() -> None:
    with pytest.raises(TypeError, match="^plugin 'boasting' declares ManagesWorkers but does not implement it$"):
        Host([_Boasting()])


def test_the_rpc_services_are_providers_of_rpc_only() -> None:
    cfg = config_from_dict({"version": "3", "server": {"command": "php w.php"}, "rpc": {"listen": "tcp://127.0.0.1:0"}})
    host = Host(default_roster(cfg))
    assert sorted(p.rpc_service for p in host.having(RpcProvider)) == ["informer", "resetter"]
    assert host.having(Resettable) == [] and host.having(HasWorkers) == [] and host.having(ManagesWorkers) == []
