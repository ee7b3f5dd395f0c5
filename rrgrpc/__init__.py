"""rrgrpc: a RoadRunner-compatible application server for PHP workers (gRPC, HTTP, Goridge RPC)."""

__version__ = "0.1.0"
