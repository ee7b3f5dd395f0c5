"""PeerService: the base of the built-in RPC services (informer, resetter) that hold no state of their
own and look their peers up at call time."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import ClassVar

from rrgrpc.plugin import Peers, RpcProvider


class PeerService:
    """A plugin whose lifespan only remembers the peers (``self.peers``) for later look-ups."""

    capabilities: ClassVar[tuple[type, ...]] = (RpcProvider,)
    name = ""
    rpc_service = ""

    def __init__(self) -> None:
        self.peers: Peers | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, peers: Peers) -> AsyncIterator[None]:
        self.peers = peers
        try:
            yield
        finally:
            self.peers = None
