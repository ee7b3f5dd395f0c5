"""rrgrpc: a RoadRunner-compatible application server for PHP workers (gRPC, HTTP, Goridge RPC)."""

__version__ = "0.1.0"

#: The RoadRunner release whose wire protocols and config this version follows; workers see it in
#: RR_VERSION and ``rpc.Version`` reports it, so PHP code that checks the version keeps working.
RR_COMPAT_VERSION = "2025.1.5"
