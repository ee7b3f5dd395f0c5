"""The ``jobs`` RPC service (PROTOCOL.md §8a.1): ``jobs.v1`` messages over the protobuf codec.

Owns decoding the arguments (protobuf bytes; anything else is refused in one line), turning a
``jobs.v1.Job`` into a ``Job``, RoadRunner's refusal texts (``empty ID field not allowed``, ...) and the
results; the operations themselves are the plugin's (push, pause, resume, declare, destroy, state).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from google.protobuf.message import DecodeError, Message

from rrgrpc.errors import ConfigError, RRError
from rrgrpc.jobs import jobs_pb2 as pb
from rrgrpc.jobs.driver import Job, Pipeline

if TYPE_CHECKING:
    from rrgrpc.jobs.plugin import JobsPlugin
    from rrgrpc.plugin import RpcMethod

#: ``jobs.Declare`` keys that describe the pipeline itself, not the driver
_DECLARE_OWN: Final = ("name", "driver")


class JobsError(RRError):
    """A jobs request the plugin refuses or a driver failed; the text goes back in the RPC error reply."""


def rpc_methods(plugin: JobsPlugin) -> Mapping[str, RpcMethod]:
    """``Push``, ``PushBatch``, ``Pause``, ``Resume``, ``List``, ``Declare``, ``Destroy``, ``Stat``."""

    async def push(arg: Any) -> pb.Empty:
        req = _decode(arg, pb.PushRequest(), "Push")
        await plugin.push(_job(req.job))
        return pb.Empty()

    async def push_batch(arg: Any) -> pb.Empty:
        req = _decode(arg, pb.PushBatchRequest(), "PushBatch")
        for job in [_job(j) for j in req.jobs]:
            await plugin.push(job, "batch")
        return pb.Empty()

    async def pause(arg: Any) -> pb.Empty:
        for name in _decode(arg, pb.Pipelines(), "Pause").pipelines:
            await plugin.pause(name)
        return pb.Empty()

    async def resume(arg: Any) -> pb.Empty:
        for name in _decode(arg, pb.Pipelines(), "Resume").pipelines:
            await plugin.resume(name)
        return pb.Empty()

    async def list_(_arg: Any) -> pb.Pipelines:
        return pb.Pipelines(pipelines=plugin.pipeline_names())

    async def declare(arg: Any) -> pb.Empty:
        values = dict(_decode(arg, pb.DeclareRequest(), "Declare").pipeline)
        name, driver = values.get("name", ""), values.get("driver", "")
        if not name:
            raise JobsError("jobs.Declare: the pipeline has no name")
        if not driver:
            raise JobsError(f"no associated driver with the pipeline, pipeline name: {name}")
        config = {k: v for k, v in values.items() if k not in _DECLARE_OWN}
        try:
            await plugin.declare(Pipeline(name, driver, config, "jobs.Declare"))
        except ConfigError as exc:
            raise JobsError(str(exc)) from None
        return pb.Empty()

    async def destroy(arg: Any) -> pb.Pipelines:
        names = list(_decode(arg, pb.Pipelines(), "Destroy").pipelines)
        for name in names:
            await plugin.destroy(name)
        return pb.Pipelines(pipelines=names)

    async def stat(_arg: Any) -> pb.Stats:
        rows = await plugin.pipelines_state()
        return pb.Stats(stats=[pb.Stat(**{k: v for k, v in r.items() if k != "error_message"}) for r in rows])

    return {
        "Push": push,
        "PushBatch": push_batch,
        "Pause": pause,
        "Resume": resume,
        "List": list_,
        "Declare": declare,
        "Destroy": destroy,
        "Stat": stat,
    }


def _decode(arg: Any, message: Message, method: str) -> Any:
    if arg is None or arg == b"":
        return message
    if not isinstance(arg, bytes | bytearray):
        raise JobsError(
            f"jobs.{method} takes a protobuf jobs.v1.{type(message).__name__} (RPC codec flag 0x80), "
            f"got {type(arg).__name__}"
        )
    try:
        message.ParseFromString(bytes(arg))
    except DecodeError:
        raise JobsError(f"jobs.{method}: the argument is not a jobs.v1.{type(message).__name__}") from None
    return message


def _job(msg: pb.Job) -> Job:
    if not msg.id:
        raise JobsError("empty ID field not allowed")
    o = msg.options
    return Job(
        id=msg.id,
        name=msg.job,
        payload=msg.payload,
        pipeline=o.pipeline,
        headers={k: list(v.value) for k, v in msg.headers.items()},
        priority=o.priority,
        delay=max(0, o.delay),
        auto_ack=o.auto_ack,
        topic=o.topic,
        metadata=o.metadata,
        offset=o.offset,
        partition=o.partition,
    )
