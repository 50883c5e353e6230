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
