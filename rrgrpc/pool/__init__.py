"""PHP worker supervision: processes, the worker protocol, the pool and its supervisor.

Knows nothing about gRPC, HTTP or RPC: those plugins hand it a :class:`Payload` and get one back.
"""

from rrgrpc.pool.payload import Payload
from rrgrpc.pool.pool import Pool, open_pool

__all__ = ["Payload", "Pool", "open_pool"]
