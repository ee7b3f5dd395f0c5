"""A small greeter.v1 client: compiles greeter.proto at run time (no generated Python code).

    python client.py [name] [--target 127.0.0.1:9001] [--wait-health SECONDS]

``--wait-health`` first polls grpc.health.v1 until the server reports SERVING (used by run.sh).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import grpc
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from rrgrpc.grpc.protos import load_protos

PROTO = Path(__file__).resolve().parent.parent.parent / "proto" / "greeter" / "v1" / "greeter.proto"


def wait_serving(channel: grpc.Channel, budget: float) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + budget
    while True:
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service="greeter.v1.Greeter"), timeout=1)
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"the server did not report SERVING within {budget:g}s")
        time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="World")
    parser.add_argument("--target", default="127.0.0.1:9001")
    parser.add_argument("--wait-health", type=float, default=0.0, metavar="SECONDS")
    args = parser.parse_args()

    pool = load_protos([str(PROTO)]).pool
    request_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("greeter.v1.HelloRequest"))
    reply_cls = message_factory.GetMessageClass(pool.FindMessageTypeByName("greeter.v1.HelloReply"))

    with grpc.insecure_channel(args.target) as channel:
        if args.wait_health:
            wait_serving(channel, args.wait_health)
        say_hello = channel.unary_unary(
            "/greeter.v1.Greeter/SayHello",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=reply_cls.FromString,
        )
        try:
            reply, call = say_hello.with_call(request_cls(name=args.name), timeout=10)
        except grpc.RpcError as err:
            sys.exit(f"{err.code().name}: {err.details()}")
        pid = dict(call.initial_metadata()).get("x-worker-pid", "?")
        print(f"{reply.message}  (answered by PHP worker pid {pid})")


if __name__ == "__main__":
    main()
