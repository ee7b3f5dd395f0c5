"""The consumer exchange, sans I/O: the task context RoadRunner builds and the worker answers it reads
(PROTOCOL.md §8a.2, including the replies verified from the real PHP Consumer)."""

from __future__ import annotations

import pytest

from rrgrpc.jobs.driver import Delivery, Headers, Job
from rrgrpc.jobs.protocol import Reply, ReplyType, parse_reply, task_context


class _Delivery(Delivery):
    async def ack(self) -> None: ...

    async def nack(self, *, requeue: bool, delay: int = 0) -> None: ...

    async def requeue(self, *, delay: int = 0, headers: Headers | None = None) -> None: ...


def test_task_context_has_roadrunners_keys_in_order() -> None:
    job = Job(id="1", name="App\\Mail", payload=b"x", pipeline="emails", headers={"a": ["b", "c"]})
    ctx = task_context(_Delivery(job, driver="amqp", queue="q"))
    assert ctx == (
        b'{"id":"1","job":"App\\\\Mail","driver":"amqp","queue":"q","pipeline":"emails","headers":{"a":["b","c"]}}'
    )
    assert b'"headers":{"t":["1"]}' in task_context(_Delivery(job, driver="amqp", queue="q"), {"t": ["1"]})


@pytest.mark.parametrize(
    ("body", "reply"),
    [
        # verified replies of the real PHP Consumer: $task->complete() and $task->fail('...', true)
        (b'{"type":0,"data":[]}', Reply(ReplyType.NO_ERROR)),
        (
            b'{"type":1,"data":{"message":"first attempt fails","requeue":true,"delay_seconds":0}}',
            Reply(ReplyType.ERROR, "first attempt fails", True, 0),
        ),
        (b'{"type":2,"data":[]}', Reply(ReplyType.ACK)),
        (b'{"type":3,"data":{"message":"no","requeue":false,"delay_seconds":5}}', Reply(3, "no", False, 5)),
        (
            b'{"type":4,"data":{"message":"again","delay_seconds":2,"headers":{"attempt":["2"]}}}',
            Reply(ReplyType.REQUEUE, "again", False, 2, {"attempt": ["2"]}),
        ),
        (b"", Reply(ReplyType.ACK)),  # an empty answer is an ack, as in RoadRunner
        (b'{"type":9}', Reply(9)),  # unknown: the plugin acks it with a warning
    ],
)
def test_worker_answers(body: bytes, reply: Reply) -> None:
    assert parse_reply(body) == reply


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "the worker's answer is not JSON: b'not json'"),
        (b'{"data":[]}', 'the worker\'s answer has no integer "type": b\'{"data":[]}\''),
        (b'{"type":1,"data":{"headers":[1]}}', 'the worker\'s answer has "headers" that are not a map'),
    ],
)
def test_malformed_answers_are_one_line(body: bytes, message: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_reply(body)
    assert str(err.value).startswith(message)
