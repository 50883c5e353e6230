"""Shared by the server's interceptors: wrapping a unary method's behavior."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

UnaryBehavior = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def with_behavior(handler: grpc.RpcMethodHandler, behavior: UnaryBehavior) -> grpc.RpcMethodHandler:
    """The same unary method, its (de)serializers kept, running `behavior` (which wraps the original)."""
    return grpc.unary_unary_rpc_method_handler(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
