"""Server reflection that serves the proto comments, so `grpcurl describe` shows the documentation.

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
from grpc_reflection.v1alpha import reflection

DESCRIPTOR_SET = resources.files("messagelog.v1") / "descriptor_set.binpb"


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    documented = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTOR_SET.read_bytes())
    pool = _DocumentedPool(descriptor_pool.Default(), {f.name: f.source_code_info for f in documented.file})
    reflection.enable_server_reflection((*service_names, reflection.SERVICE_NAME), server, pool=pool)


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
