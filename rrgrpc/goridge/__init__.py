"""Goridge: the frame format every rrgrpc channel speaks (worker pipes and sockets, the RPC endpoint)."""
