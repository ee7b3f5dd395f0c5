"""The gRPC plugin: serves the services of ``.proto`` files from PHP workers (PROTOCOL.md §4).

Modules: ``protos`` (proto loading), ``status`` (worker replies and pool failures -> gRPC
outcomes), ``proxy`` (the per-call data plane), ``plugin`` (``GrpcPlugin``: server, health,
reflection, pool, reset, shutdown). Nothing is imported eagerly.
"""
