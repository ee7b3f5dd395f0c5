"""The exception hierarchy: the class of an error is its kind, and decides what happens next.

Edges (gRPC, HTTP, RPC) convert these once into their own status codes; nothing below them
knows about status codes.
"""

from __future__ import annotations


class RRError(Exception):
    """Base for everything rrgrpc raises on purpose."""


class ConfigError(RRError):
    """A configuration value is missing, malformed or unknown. The message names the key and file."""


class ProtocolError(RRError):
    """A Goridge frame could not be read: bad CRC, short read, header length or size out of range."""


class PoolError(RRError):
    """Base for failures of the worker pool."""


class NoFreeWorkers(PoolError):
    """No worker became free within allocate_timeout (or the caller's deadline)."""


class QueueFull(PoolError):
    """max_queue_size requests are already waiting for a worker."""


class PoolClosed(PoolError):
    """The pool is stopping (or was destroyed) and takes no more requests."""


class RequestDropped(PoolError):
    """The caller went away (client disconnected, deadline passed) before a worker took the request."""


class ExecTTLExceeded(PoolError):
    """The worker did not answer within exec_ttl (or the caller's deadline); it was killed."""


class WorkerError(PoolError):
    """The worker answered with an ERROR frame. The process is healthy and stays in the pool.

    ``raw`` keeps the frame's bytes: the legacy gRPC error text carries binary ``Any`` details.
    """

    def __init__(self, message: str, raw: bytes = b"") -> None:
        super().__init__(message)
        self.raw = raw or message.encode()


class WorkerLost(PoolError):
    """The relay broke or the process died mid-exchange. The worker has been killed and replaced."""


class BootError(PoolError):
    """Workers could not be started: the command failed, the script is missing, or the handshake broke."""
