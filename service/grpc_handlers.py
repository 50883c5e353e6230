"""Shared by the server's interceptors: wrapping a unary method's behavior, and decoding requests
so that bytes which are not the method's message reach the servicer instead of failing in gRPC."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]
Deserializer = Callable[[bytes], Any]


def with_behavior(
    handler: grpc.RpcMethodHandler, behavior: UnaryBehavior, deserializer: Deserializer | None = None
) -> grpc.RpcMethodHandler:
    """The same unary method, its (de)serializers kept unless `deserializer` replaces the request's,
    running `behavior` (which wraps the original)."""
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=deserializer or handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


@dataclass(frozen=True)
class Undecodable:
    """A request whose bytes are not the method's message: not protobuf, or a string field that
    is not UTF-8. The servicer answers it INVALID_ARGUMENT."""

    size: int

    def ByteSize(self) -> int:  # noqa: N802 (a protobuf message's name for it)
        return self.size


def _decoding(deserializer: Deserializer) -> Deserializer:
    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError:
            # gRPC would answer UNKNOWN, with a traceback in the log and no rpc line or ErrorInfo.
            return Undecodable(len(data))

    return decode


class RequestDecodingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Decodes the requests of `service`'s unary methods tolerantly (see Undecodable); the
    innermost interceptor, so the ones before it keep its deserializer."""

    def __init__(self, service: str) -> None:
        self._prefix = f"/{service}/"

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or handler.unary_unary is None or not method.startswith(self._prefix):
            return handler
        return with_behavior(handler, handler.unary_unary, _decoding(handler.request_deserializer))
