"""MessageLogService over gRPC: validation, the digest logic, and the only place errors become statuses."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc
import structlog
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from messagelog.client import CRM_RETRIES_TRAILER
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb
from messagelog.v1 import message_log_service_pb2_grpc as service_grpc

from service import metrics
from service.adapters.base import CrmCall, CrmCallStats, crm_call_stats
from service.adapters.registry import NAMES, AdapterRegistry
from service.caller import Caller, current_caller, current_request_id
from service.config import Settings
from service.digest import DigestLogger, LogResult
from service.errors import (
    CallerNotAllowed,
    CredentialsMissing,
    CrmError,
    CrmRateLimited,
    InvalidRequest,
    MessageLogError,
    StoreUnavailable,
    UndecodableRequest,
    UnknownCrm,
)
from service.grpc_handlers import Undecodable
from service.inspection import Account, Inspector, account_of, reading_call
from service.model import LogRequest, Outcome
from service.privacy import phone_for_log
from service.validation import Request, parse_account_user, parse_request

log = structlog.get_logger("messagelog.rpc")

ERROR_DOMAIN = "messagelog"
AUTH_METADATA = "crm-authorization"
REQUEST_ID_METADATA = "x-request-id"
MAX_AUTHORIZATION_CHARS = 8192

_OUTCOMES = {
    Outcome.CREATED: pb.LOG_OUTCOME_CREATED,
    Outcome.APPENDED: pb.LOG_OUTCOME_APPENDED,
    Outcome.ALREADY_LOGGED: pb.LOG_OUTCOME_ALREADY_LOGGED,
}
_RETURN_TEXT = {
    Outcome.CREATED: "Message logged.",
    Outcome.APPENDED: "Message added to the conversation log.",
    Outcome.ALREADY_LOGGED: "Message was already logged.",
}

ResponseT = TypeVar("ResponseT", service_pb.AddMessageLogResponse, service_pb.UpdateMessageLogResponse)
InspectionT = TypeVar("InspectionT", service_pb.GetMessageLogResponse, service_pb.ListMessageLogsResponse)
InspectionRequest = service_pb.GetMessageLogRequest | service_pb.ListMessageLogsRequest | Undecodable
# Failures that name no account to count them under, or that the store could not count.
_UNRECORDED = (InvalidRequest, StoreUnavailable)


class MessageLogServicer(service_grpc.MessageLogServiceServicer):
    def __init__(
        self, settings: Settings, registry: AdapterRegistry, digests: DigestLogger, inspector: Inspector
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._digests = digests
        self._inspector = inspector

    async def AddMessageLog(  # noqa: N802 (gRPC method name)
        self, request: service_pb.AddMessageLogRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> service_pb.AddMessageLogResponse:
        async def build(result: LogResult, parsed: LogRequest) -> service_pb.AddMessageLogResponse:
            return service_pb.AddMessageLogResponse(
                log_id=result.log_id,
                outcome=_OUTCOMES[result.outcome],
                return_message=_return_message(result.outcome),
                local_date=result.local_date or parsed.local_date.isoformat(),
            )

        return await self._handle("AddMessageLog", request, context, build)

    async def UpdateMessageLog(  # noqa: N802 (gRPC method name)
        self, request: service_pb.UpdateMessageLogRequest | Undecodable, context: grpc.aio.ServicerContext
    ) -> service_pb.UpdateMessageLogResponse:
        async def build(result: LogResult, _parsed: LogRequest) -> service_pb.UpdateMessageLogResponse:
            return service_pb.UpdateMessageLogResponse(
                log_id=result.log_id,
                outcome=_OUTCOMES[result.outcome],
                return_message=_return_message(result.outcome),
            )

        return await self._handle("UpdateMessageLog", request, context, build)

    async def GetMessageLog(  # noqa: N802 (gRPC method name)
        self, request: service_pb.GetMessageLogRequest, context: grpc.aio.ServicerContext
    ) -> service_pb.GetMessageLogResponse:
        async def answer(account: Account) -> service_pb.GetMessageLogResponse:
            return service_pb.GetMessageLogResponse(message_log=await self._inspector.get(request, account))

        return await self._inspect("GetMessageLog", request, context, answer)

    async def ListMessageLogs(  # noqa: N802 (gRPC method name)
        self, request: service_pb.ListMessageLogsRequest, context: grpc.aio.ServicerContext
    ) -> service_pb.ListMessageLogsResponse:
        async def answer(account: Account) -> service_pb.ListMessageLogsResponse:
            return await self._inspector.list(request, account)

        return await self._inspect("ListMessageLogs", request, context, answer)

    async def _inspect(
        self,
        method: str,
        request: InspectionRequest,
        context: grpc.aio.ServicerContext,
        answer: Callable[[Account], Awaitable[InspectionT]],
    ) -> InspectionT:
        """Authorizes a read like a write (the caller's CRMs, then the account the credential
        proves) and answers it for that account only."""
        started = time.perf_counter()
        fields: dict[str, object] = {"method": method}
        crm = "" if isinstance(request, Undecodable) else request.crm[:32]
        if crm:
            fields["crm"] = crm
        caller = current_caller.get()
        if caller is not None:
            fields["caller"] = caller.name
        try:
            if isinstance(request, Undecodable):
                raise UndecodableRequest(f"{method}Request")
            crm = request.crm.strip().lower()
            _check_caller_may_use(caller, crm)
            if crm not in NAMES:
                raise UnknownCrm(request.crm[:40], NAMES)
            authorization = _authorization(context)
            user = parse_account_user(request.user)
            call = reading_call(user, authorization, self._deadline(context))
            account = await account_of(self._registry.get(crm), call)
            response = await answer(account)
            fields.update(status="OK")
            return response
        except Exception as exc:
            await self._fail(context, exc, crm, fields, internal="internal error")
        finally:
            log.info("rpc", **fields, duration_ms=round((time.perf_counter() - started) * 1000, 1))

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        """The call's end as a time.monotonic() value: the caller's deadline, at most MAX_CALL_SECONDS."""
        budget = self._settings.max_call_seconds
        remaining = context.time_remaining()
        if remaining is not None:
            budget = min(budget, remaining)
        return time.monotonic() + budget

    async def _record_failure(self, request: LogRequest, account: Account, error: MessageLogError) -> None:
        """Counts the failed call under its message, for GetMessageLog; never fails the call itself."""
        if isinstance(error, _UNRECORDED):
            return
        try:
            await self._inspector.record_failure(request, account, error)
        except StoreUnavailable as exc:
            log.warning("failure_not_recorded", reason=exc.reason)

    async def _fail(
        self,
        context: grpc.aio.ServicerContext,
        exc: Exception,
        crm: str,
        fields: dict[str, object],
        *,
        internal: str = "internal error; the message was not logged",
    ) -> NoReturn:
        """Ends the call with exc's status: a MessageLogError's own, else INTERNAL saying `internal`."""
        if isinstance(exc, MessageLogError):
            fields.update(status=exc.grpc_code.name, reason=exc.reason)
            await context.abort(exc.grpc_code, exc.message, error_metadata(exc, crm))
            raise AssertionError("abort returned") from exc  # pragma: no cover
        # A defect, not a caller's error: log where it happened, never the exception's text,
        # which can quote SQL parameters or CRM payloads.
        fields.update(
            status="INTERNAL",
            reason="INTERNAL_ERROR",
            error_type=type(exc).__name__,
            where="".join(traceback.format_tb(exc.__traceback__)[-3:]),
        )
        defect = MessageLogError(internal)
        await context.abort(grpc.StatusCode.INTERNAL, defect.message, error_metadata(defect, crm))
        raise AssertionError("abort returned") from exc  # pragma: no cover

    async def _handle(
        self,
        method: str,
        request: Request | Undecodable,
        context: grpc.aio.ServicerContext,
        build: Callable[[LogResult, LogRequest], Awaitable[ResponseT]],
    ) -> ResponseT:
        started = time.perf_counter()
        stats = CrmCallStats()
        token = crm_call_stats.set(stats)
        fields: dict[str, object] = {"method": method}
        crm = ""
        if not isinstance(request, Undecodable):
            crm = request.crm[:32]
            fields.update(
                crm=crm,
                message_id=request.message.id[:64],
                contact_phone=phone_for_log(request.contact.phone_number, self._settings.log_phone_numbers),
            )
        caller = current_caller.get()
        if caller is not None:
            fields["caller"] = caller.name
        parsed: LogRequest | None = None
        # Known once the CRM verified the credential: only then is a failure counted, under it.
        account: Account | None = None
        deadline = self._deadline(context)
        try:
            if isinstance(request, Undecodable):
                raise UndecodableRequest(f"{method}Request")
            _check_caller_may_use(caller, request.crm.strip().lower())
            parsed = parse_request(request, authorization=_authorization(context), known_crms=NAMES)
            adapter = self._registry.get(parsed.crm)
            call = CrmCall(
                user=parsed.user,
                contact=parsed.contact,
                authorization=parsed.authorization,
                extras=parsed.additional_submission,
                deadline=deadline,
            )
            adapter.validate(call)
            # The digest verifies it too, from the adapter's cache: no second CRM call.
            account = await account_of(adapter, call)
            result = await self._digests.log(parsed, adapter, deadline=deadline)
            fields.update(status="OK", outcome=result.outcome.value)
            metrics.digest_outcome(parsed.crm, result.outcome.value)
            if stats.retries:
                # Why a call took long: a backfill's progress shows the CRM's rate limits waited out.
                context.set_trailing_metadata(((CRM_RETRIES_TRAILER, str(stats.retries)),))
            return await build(result, parsed)
        except Exception as exc:
            if parsed is not None and account is not None and isinstance(exc, MessageLogError):
                await self._record_failure(parsed, account, exc)
            await self._fail(context, exc, crm, fields)
        finally:
            crm_call_stats.reset(token)
            log.info(
                "rpc",
                **fields,
                crm_calls=stats.calls,
                crm_retries=stats.retries,
                crm_http_status=stats.last_http_status,
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )


def _check_caller_may_use(caller: Caller | None, crm: str) -> None:
    if caller is not None and not caller.may_use(crm):
        raise CallerNotAllowed(f"caller {caller.name!r} may not log into {crm[:32]!r}")


def _authorization(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == AUTH_METADATA:
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            text = text.strip()
            if text and len(text) <= MAX_AUTHORIZATION_CHARS and text.isprintable():
                return text
            break
    raise CredentialsMissing(
        f"call metadata {AUTH_METADATA!r} must hold the Authorization header value the CRM expects"
    )


def _return_message(outcome: Outcome) -> pb.ReturnMessage:
    return pb.ReturnMessage(
        message=_RETURN_TEXT[outcome],
        message_type=pb.RETURN_MESSAGE_TYPE_SUCCESS,
        ttl=duration_pb2.Duration(seconds=3),
    )


def error_metadata(exc: MessageLogError, crm: str) -> tuple[tuple[str, str | bytes], ...]:
    info = error_details_pb2.ErrorInfo(reason=exc.reason, domain=ERROR_DOMAIN)
    if crm:
        info.metadata["crm"] = crm[:32]
    if isinstance(exc, CrmError):
        if exc.http_status:
            info.metadata["crm_http_status"] = str(exc.http_status)
        if exc.crm_code:
            info.metadata["crm_error_code"] = exc.crm_code
        if exc.crm_message:
            info.metadata["crm_error_message"] = exc.crm_message
    status = status_pb2.Status(code=_rpc_code(exc.grpc_code), message=exc.message)
    status.details.add().Pack(info)
    if isinstance(exc, InvalidRequest):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in exc.violations
            ]
        )
        status.details.add().Pack(bad_request)
    if exc.retry_after is not None:
        retry = error_details_pb2.RetryInfo()
        retry.retry_delay.FromNanoseconds(int(exc.retry_after * 1e9))
        status.details.add().Pack(retry)
    trailing: tuple[tuple[str, str | bytes], ...] = rpc_status.to_status(status).trailing_metadata
    request_id = current_request_id.get()
    if request_id:
        trailing += ((REQUEST_ID_METADATA, request_id),)
    if isinstance(exc, CrmRateLimited):
        # A rate limit that reaches the caller outlasted the waits the service makes itself:
        # tell gRPC's automatic retries not to repeat the call blindly (A6 pushback); the
        # caller's code decides, with RetryInfo saying when.
        trailing += (("grpc-retry-pushback-ms", "-1"),)
    elif exc.retryable and exc.retry_after is not None:
        trailing += (("grpc-retry-pushback-ms", str(int(exc.retry_after * 1000))),)
    return trailing


def _rpc_code(code: grpc.StatusCode) -> int:
    value: int = code.value[0]
    assert code_pb2.Code.Name(value)  # the two enums share numbers; this fails loudly if not
    return value
