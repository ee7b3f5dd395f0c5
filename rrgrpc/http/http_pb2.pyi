# ruff: noqa
# mypy: disable-error-code="type-arg"
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Request(_message.Message):
    __slots__ = ("remote_addr", "protocol", "method", "uri", "header", "cookies", "raw_query", "parsed", "uploads", "attributes")
    class HeaderEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HeaderValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HeaderValue, _Mapping]] = ...) -> None: ...
    class CookiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HeaderValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HeaderValue, _Mapping]] = ...) -> None: ...
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HeaderValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HeaderValue, _Mapping]] = ...) -> None: ...
    REMOTE_ADDR_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    COOKIES_FIELD_NUMBER: _ClassVar[int]
    RAW_QUERY_FIELD_NUMBER: _ClassVar[int]
    PARSED_FIELD_NUMBER: _ClassVar[int]
    UPLOADS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    remote_addr: str
    protocol: str
    method: str
    uri: str
    header: _containers.MessageMap[str, HeaderValue]
    cookies: _containers.MessageMap[str, HeaderValue]
    raw_query: str
    parsed: bool
    uploads: bytes
    attributes: _containers.MessageMap[str, HeaderValue]
    def __init__(self, remote_addr: _Optional[str] = ..., protocol: _Optional[str] = ..., method: _Optional[str] = ..., uri: _Optional[str] = ..., header: _Optional[_Mapping[str, HeaderValue]] = ..., cookies: _Optional[_Mapping[str, HeaderValue]] = ..., raw_query: _Optional[str] = ..., parsed: _Optional[bool] = ..., uploads: _Optional[bytes] = ..., attributes: _Optional[_Mapping[str, HeaderValue]] = ...) -> None: ...

class Response(_message.Message):
    __slots__ = ("status", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: HeaderValue
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[HeaderValue, _Mapping]] = ...) -> None: ...
    STATUS_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    status: int
    headers: _containers.MessageMap[str, HeaderValue]
    def __init__(self, status: _Optional[int] = ..., headers: _Optional[_Mapping[str, HeaderValue]] = ...) -> None: ...

class HeaderValue(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, value: _Optional[_Iterable[bytes]] = ...) -> None: ...
