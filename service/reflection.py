"""Server reflection that serves the proto comments, so `grpcurl describe` shows the documentation.

Both grpc.reflection.v1 (what newer tools ask for first) and v1alpha are served. grpcio-reflection
implements only v1alpha; v1 is the same protocol with the same messages under another package
(grpc/reflection/v1/reflection.proto in the grpc-proto repository), so the v1alpha servicer
answers both, its messages read and written as the v1 ones, which share every field number.

grpcio-reflection answers with `FileDescriptor.CopyToProto`, which (on protobuf's upb backend)
leaves out the source info that holds the comments, whatever pool it is given. So the pool handed
to it is a thin view of the default pool whose files copy out as before plus their source info,
taken from the committed descriptor set (`make proto`, built with --include_source_info). Only the
source info is taken: the set's other additions (json_name) would change how grpcurl prints JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

DESCRIPTOR_SET = resources.files("messagelog.v1") / "descriptor_set.binpb"
V1_SERVICE_NAME = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    documented = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    _add_v1_descriptor()
    pool = _DocumentedPool(descriptor_pool.Default(), {f.name: f.source_code_info for f in documented.file})
    servicer = ReflectionServicer((*service_names, V1_SERVICE_NAME, reflection.SERVICE_NAME), pool=pool)
    info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    for name in (V1_SERVICE_NAME, reflection.SERVICE_NAME):
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(name, {"ServerReflectionInfo": info}),)
        )


def _add_v1_descriptor() -> None:
    """Puts grpc.reflection.v1 in the default pool (v1alpha's file renamed), so the v1 service
    can be described like any other."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old, new = proto.package, "grpc.reflection.v1"
    proto.name, proto.package = _V1_FILE, new
    proto.ClearField("options")
    for message in proto.message_type:
        for field in message.field:
            if field.type_name:
                field.type_name = field.type_name.replace(f".{old}.", f".{new}.")
    for method in proto.service[0].method:
        method.input_type = method.input_type.replace(f".{old}.", f".{new}.")
        method.output_type = method.output_type.replace(f".{old}.", f".{new}.")
    pool.AddSerializedFile(proto.SerializeToString())


class _DocumentedPool:
    """The pool reflection reads, whose files come out with their source info."""

    def __init__(
        self,
        pool: descriptor_pool.DescriptorPool,
        source_info: Mapping[str, descriptor_pb2.SourceCodeInfo],
    ) -> None:
        self._pool = pool
        self._source_info = source_info

    def FindFileByName(self, name: str) -> _DocumentedFile:  # noqa: N802 (DescriptorPool's name)
        return _DocumentedFile(self._pool.FindFileByName(name), self._source_info)

    def FindFileContainingSymbol(self, symbol: str) -> _DocumentedFile:  # noqa: N802 (DescriptorPool's name)
        return _DocumentedFile(self._pool.FindFileContainingSymbol(symbol), self._source_info)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class _DocumentedFile:
    """A file descriptor as reflection uses it: its name, its dependencies, and its proto."""

    def __init__(self, descriptor: Any, source_info: Mapping[str, descriptor_pb2.SourceCodeInfo]) -> None:
        self._descriptor = descriptor
        self._source_info = source_info
        self.name: str = descriptor.name

    @property
    def dependencies(self) -> list[_DocumentedFile]:
        return [_DocumentedFile(d, self._source_info) for d in self._descriptor.dependencies]

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:  # noqa: N802 (the descriptor's name)
        self._descriptor.CopyToProto(proto)
        source_info = self._source_info.get(self.name)
        if source_info is not None:
            proto.source_code_info.CopyFrom(source_info)
