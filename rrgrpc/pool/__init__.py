"""PHP worker supervision: processes, the worker protocol, the pool and its supervisor.

Knows nothing about gRPC, HTTP or RPC: those plugins hand it a :class:`Payload` and get one back.
"""
