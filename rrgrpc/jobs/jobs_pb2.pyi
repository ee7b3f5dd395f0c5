# ruff: noqa
# mypy: disable-error-code="type-arg"
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PushRequest(_message.Message):
    __slots__ = ("job",)
    JOB_FIELD_NUMBER: _ClassVar[int]
    job: Job
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ...) -> None: ...

class PushBatchRequest(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("job", "id", "payload", "headers", "options")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HeaderValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HeaderValue, _Mapping]] = ...) -> None: ...
    JOB_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    job: str
    id: str
    payload: bytes
    headers: _containers.MessageMap[str, HeaderValue]
    options: Options
    def __init__(self, job: _Optional[str] = ..., id: _Optional[str] = ..., payload: _Optional[bytes] = ..., headers: _Optional[_Mapping[str, HeaderValue]] = ..., options: _Optional[_Union[Options, _Mapping]] = ...) -> None: ...

class Options(_message.Message):
    __slots__ = ("priority", "pipeline", "delay", "auto_ack", "topic", "metadata", "offset", "partition", "key")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    DELAY_FIELD_NUMBER: _ClassVar[int]
    AUTO_ACK_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    priority: int
    pipeline: str
    delay: int
    auto_ack: bool
    topic: str
    metadata: str
    offset: int
    partition: int
    key: str
    def __init__(self, priority: _Optional[int] = ..., pipeline: _Optional[str] = ..., delay: _Optional[int] = ..., auto_ack: _Optional[bool] = ..., topic: _Optional[str] = ..., metadata: _Optional[str] = ..., offset: _Optional[int] = ..., partition: _Optional[int] = ..., key: _Optional[str] = ...) -> None: ...

class HeaderValue(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, value: _Optional[_Iterable[str]] = ...) -> None: ...

class DeclareRequest(_message.Message):
    __slots__ = ("pipeline",)
    class PipelineEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    pipeline: _containers.ScalarMap[str, str]
    def __init__(self, pipeline: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Pipelines(_message.Message):
    __slots__ = ("pipelines",)
    PIPELINES_FIELD_NUMBER: _ClassVar[int]
    pipelines: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pipelines: _Optional[_Iterable[str]] = ...) -> None: ...

class Stats(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[Stat]
    def __init__(self, stats: _Optional[_Iterable[_Union[Stat, _Mapping]]] = ...) -> None: ...

class Stat(_message.Message):
    __slots__ = ("pipeline", "driver", "queue", "active", "delayed", "reserved", "ready", "priority")
    PIPELINE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    DELAYED_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    pipeline: str
    driver: str
    queue: str
    active: int
    delayed: int
    reserved: int
    ready: bool
    priority: int
    def __init__(self, pipeline: _Optional[str] = ..., driver: _Optional[str] = ..., queue: _Optional[str] = ..., active: _Optional[int] = ..., delayed: _Optional[int] = ..., reserved: _Optional[int] = ..., ready: _Optional[bool] = ..., priority: _Optional[int] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
