"""Who is calling: the identity the auth interceptor proved, read by the servicer for per-CRM rules."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """An authenticated calling service; crms is None when it may use every CRM."""

    name: str
    crms: frozenset[str] | None = None

    def may_use(self, crm: str) -> bool:
        return self.crms is None or crm in self.crms


current_caller: ContextVar[Caller | None] = ContextVar("current_caller", default=None)
# The call's request id (x-request-id), set by the request-context interceptor: failed calls
# return it among their trailers (service.servicer.error_metadata).
current_request_id: ContextVar[str] = ContextVar("current_request_id", default="")
