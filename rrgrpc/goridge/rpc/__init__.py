"""Goridge RPC: the codec of the ``rpc.listen`` endpoint, its connection loop and an asyncio client.

Owns everything that is RPC-specific on the wire (PROTOCOL.md §6), nothing about plugins:
:mod:`~rrgrpc.goridge.rpc.codec` (frames, codecs, gob, argument helpers),
:mod:`~rrgrpc.goridge.rpc.conn` (one server connection, the shared byte budget) and
:mod:`~rrgrpc.goridge.rpc.client` (:class:`RpcClient`). Their public names are re-exported here.
"""

from rrgrpc.goridge.rpc.client import CONNECT_TIMEOUT, RpcClient, open_stream
from rrgrpc.goridge.rpc.codec import (
    MAX_RPC_FRAME,
    Request,
    RpcArgumentError,
    RpcError,
    arg_bool,
    arg_str,
    decode_argument,
    encode_error,
    encode_reply,
    encode_request,
    encode_result,
    gob_decode_basic,
    parse,
    reply_codec,
    select_codec,
)
from rrgrpc.goridge.rpc.conn import (
    FRAME_TIMEOUT,
    MAX_IN_FLIGHT,
    ByteBudget,
    Dispatch,
    peer_name,
    read_frame,
    serve_connection,
)

__all__ = [
    "CONNECT_TIMEOUT",
    "FRAME_TIMEOUT",
    "MAX_IN_FLIGHT",
    "MAX_RPC_FRAME",
    "ByteBudget",
    "Dispatch",
    "Request",
    "RpcArgumentError",
    "RpcClient",
    "RpcError",
    "arg_bool",
    "arg_str",
    "decode_argument",
    "encode_error",
    "encode_reply",
    "encode_request",
    "encode_result",
    "gob_decode_basic",
    "open_stream",
    "parse",
    "peer_name",
    "read_frame",
    "reply_codec",
    "select_codec",
    "serve_connection",
]
