"""Backfill: RingCentral message-store records (JSON lines) logged with bounded concurrency.

Re-running a backfill is safe: the service answers ALREADY_LOGGED for a message it holds, so a
second run only does what the first did not finish, and says so in its summary.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from google.protobuf import json_format, timestamp_pb2

from messagelog.client import MessageLogClient, MessageLogError
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb

_TYPES = {
    "SMS": pb.MESSAGE_TYPE_SMS,
    "Pager": pb.MESSAGE_TYPE_PAGER,
    "VoiceMail": pb.MESSAGE_TYPE_VOICEMAIL,
    "Fax": pb.MESSAGE_TYPE_FAX,
}
_DIRECTIONS = {"Inbound": pb.MESSAGE_DIRECTION_INBOUND, "Outbound": pb.MESSAGE_DIRECTION_OUTBOUND}
_OUTCOMES = {
    pb.LOG_OUTCOME_CREATED: "created",
    pb.LOG_OUTCOME_APPENDED: "appended",
    pb.LOG_OUTCOME_ALREADY_LOGGED: "already logged",
}
BAD_RECORD = "BAD_RECORD"
NO_CONTACT = "NO_CONTACT"
# A backfill outlives short CRM outages: after the channel's own retries, UNAVAILABLE is tried
# this many more times, waiting what the server's RetryInfo asks (or a growing pause).
EXTRA_ATTEMPTS = 4


class RecordError(ValueError):
    """A record that cannot become a request; reason is BAD_RECORD or NO_CONTACT."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


Item = list[service_pb.AddMessageLogRequest] | RecordError


@dataclass
class Context:
    """Who the backfilled messages are logged for; the context file's JSON shape, see the README."""

    crm: str
    user: pb.CrmUser
    contacts: list[pb.Contact] = field(default_factory=list)
    additional_submission: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Context:
        unknown = set(data) - {"crm", "user", "contacts", "additional_submission"}
        if unknown:
            raise ValueError(f"unknown context keys: {', '.join(sorted(unknown))}")
        return cls(
            crm=str(data.get("crm", "")),
            user=json_format.ParseDict(data.get("user", {}), pb.CrmUser()),
            contacts=[json_format.ParseDict(c, pb.Contact()) for c in data.get("contacts", [])],
            additional_submission={str(k): str(v) for k, v in data.get("additional_submission", {}).items()},
        )

    def contacts_for(self, message: pb.Message) -> list[pb.Contact]:
        """The contacts whose number is the message's other party; else the one without a number."""
        if message.direction == pb.MESSAGE_DIRECTION_INBOUND:
            numbers = {message.sender.phone_number}
        else:
            numbers = {p.phone_number for p in message.recipients}
        matched = [c for c in self.contacts if c.phone_number and c.phone_number in numbers]
        return matched or [c for c in self.contacts if not c.phone_number][:1]


def _party(data: Any) -> pb.Party:
    data = data or {}
    return pb.Party(
        phone_number=str(data.get("phoneNumber", "")),
        name=str(data.get("name", "")),
        extension_number=str(data.get("extensionNumber", "")),
        location=str(data.get("location", "")),
    )


def _time(value: Any) -> timestamp_pb2.Timestamp | None:
    if not value:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromJsonString(str(value))
    return ts


def _attachment_link(record: dict[str, Any], attachment_type: str) -> str:
    """The `link` of the record's first attachment of this type (RingCentral App Connect takes a
    voicemail's recording link from its AudioRecording attachment and a fax's document link from
    its RenderedDocument one: our research notes on the system this replaces, app-connect.md,
    section 1.2 step 9)."""
    for attachment in record.get("attachments") or []:
        if isinstance(attachment, dict) and attachment.get("type") == attachment_type:
            return str(attachment.get("link") or "")
    return ""


def message_from_record(record: dict[str, Any]) -> pb.Message:
    """One message-store record (the RingCentral REST shape) as a messagelog Message."""
    kind = _TYPES.get(record.get("type", ""))
    if kind is None:
        raise RecordError(BAD_RECORD, f"type {record.get('type')!r} is not SMS, Pager, VoiceMail or Fax")
    direction = _DIRECTIONS.get(record.get("direction", ""))
    if direction is None:
        raise RecordError(BAD_RECORD, f"direction {record.get('direction')!r} is not Inbound or Outbound")
    conversation = record.get("conversationId") or (record.get("conversation") or {}).get("id", "")
    try:
        created, modified = _time(record.get("creationTime")), _time(record.get("lastModifiedTime"))
    except ValueError as exc:
        raise RecordError(BAD_RECORD, f"bad time: {exc}") from None
    return pb.Message(
        id=str(record.get("id", "")),
        conversation_id=str(conversation),
        type=kind,
        direction=direction,
        sender=_party(record.get("from")),
        recipients=[_party(p) for p in record.get("to") or []],
        # A voicemail's transcript is an attachment (AudioTranscription) the export holds only as
        # an API address; its subject is no transcript, and would be shown as one.
        subject="" if kind == pb.MESSAGE_TYPE_VOICEMAIL else str(record.get("subject", "")),
        creation_time=created,
        last_modified_time=modified,
        attachments=[
            pb.Attachment(
                id=str(a.get("id", "")),
                uri=str(a.get("uri", "")),
                type=str(a.get("type", "")),
                content_type=str(a.get("contentType", "")),
                link=str(a.get("link", "")),
                file_name=str(a.get("fileName", "")),
            )
            for a in record.get("attachments") or []
        ],
        read_status=str(record.get("readStatus", "")),
        message_status=str(record.get("messageStatus", "")),
        availability=str(record.get("availability", "")),
        priority=str(record.get("priority", "")),
        uri=str(record.get("uri", "")),
    )


def requests_for(line: str, context: Context) -> list[service_pb.AddMessageLogRequest]:
    """The calls one JSON line needs: one per matching contact (a group message is logged per contact)."""
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise RecordError(BAD_RECORD, f"not JSON: {exc}") from None
    if not isinstance(record, dict):
        raise RecordError(BAD_RECORD, "not a JSON object")
    message = message_from_record(record)
    contacts = context.contacts_for(message)
    if not contacts:
        raise RecordError(NO_CONTACT, "no context contact has the other party's number")
    recording_link = fax_doc_link = ""
    if message.type == pb.MESSAGE_TYPE_VOICEMAIL:
        recording_link = _attachment_link(record, "AudioRecording")
    elif message.type == pb.MESSAGE_TYPE_FAX:
        fax_doc_link = _attachment_link(record, "RenderedDocument")
    return [
        service_pb.AddMessageLogRequest(
            crm=context.crm,
            user=context.user,
            contact=contact,
            message=message,
            additional_submission=context.additional_submission,
            recording_link=recording_link,
            fax_doc_link=fax_doc_link,
        )
        for contact in contacts
    ]


@dataclass
class Summary:
    """Outcomes per call (a group message makes one call per contact); failures by reason."""

    messages: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def lines(self) -> list[str]:
        rate = self.messages / self.seconds if self.seconds else 0.0
        lines = [
            f"backfill: {self.messages} messages in {self.seconds:.1f} s ({rate:.0f}/s)",
            *(f"  {name + ':':<16}{self.outcomes[name]}" for name in _OUTCOMES.values()),
            f"  {'failed:':<16}{self.failed}",
        ]
        lines += [f"    {reason}: {count}" for reason, count in sorted(self.failures.items())]
        return lines


class Progress:
    """One line on stderr: rewritten in place on a terminal, printed every `every` seconds otherwise."""

    def __init__(
        self, total: int, stream: TextIO, *, every: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.total = total
        self.stream = stream
        self.tty = stream.isatty()
        self.every = 0.1 if self.tty else every
        self.clock = clock
        self.started = clock()
        self._last = self.started
        self.done = 0
        self.failed = 0
        # CRM requests the service sent again (a 429's wait, a 5xx retry), and the backfill's own
        # pauses when the service handed a rate limit back: why the rate is what it is.
        self.crm_retries = 0
        self.pauses = 0
        self.paused_seconds = 0.0
        self.paused_until = 0.0
        self.paused_for = ""

    def text(self) -> str:
        elapsed = max(self.clock() - self.started, 1e-9)
        rate = self.done / elapsed
        left = self.total - self.done
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        percent = 100 * self.done / self.total if self.total else 100.0
        text = (
            f"backfill: {self.done}/{self.total} messages ({percent:.0f}%), {rate:.0f}/s, "
            f"ETA {eta}, {self.failed} failed"
        )
        if self.crm_retries:
            text += f", {self.crm_retries} CRM retries waited out by the service"
        if self.pauses:
            text += f", {self.pauses} pauses ({self.paused_seconds:.0f} s)"
        waiting = self.paused_until - self.clock()
        if waiting > 0:
            text += f", waiting {waiting:.0f} s ({self.paused_for})"
        return text

    def retried(self, count: int) -> None:
        """The service sent `count` CRM requests again within one call."""
        self.crm_retries += count

    def pause(self, seconds: float, reason: str) -> None:
        """Every call waits `seconds` because the service answered `reason` (a rate limit)."""
        self.pauses += 1
        self.paused_seconds += seconds
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self.paused_for = reason
        self.show()

    def advance(self, *, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        now = self.clock()
        if now - self._last >= self.every:
            self._last = now
            self.show()

    def show(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K" + self.text())
        else:
            self.stream.write(self.text() + "\n")
        self.stream.flush()

    def note(self, line: str) -> None:
        """A line of its own, which must not be overwritten by the progress line."""
        self.stream.write(("\r\x1b[K" if self.tty else "") + line + "\n")
        if self.tty:
            self.stream.write(self.text())
        self.stream.flush()

    def finish(self) -> None:
        self.show()
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


class Backfill:
    """Logs every line of an export; failures are counted, never fatal."""

    def __init__(
        self,
        client: MessageLogClient,
        context: Context,
        crm_authorization: str,
        *,
        concurrency: int = 8,
        shown_failures_per_reason: int = 3,
    ) -> None:
        self.client = client
        self.context = context
        self.auth = crm_authorization
        self.concurrency = concurrency
        self.shown_failures_per_reason = shown_failures_per_reason
        self.summary = Summary()
        # Set by whichever call the CRM rate-limited: every worker waits, not just that one.
        self._paused_until = 0.0

    async def run(self, lines: Sequence[str], progress: Progress) -> Summary:
        started = time.monotonic()
        queue = iter(self._by_conversation(lines))
        workers = [asyncio.create_task(self._worker(queue, progress)) for _ in range(self.concurrency)]
        await asyncio.gather(*workers)
        progress.finish()
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def _by_conversation(self, lines: Sequence[str]) -> list[list[Item]]:
        """Groups the lines by conversation, longest first; a voicemail, fax or bad line is alone.

        One conversation is sent in order, one call at a time: its digest is never contended, and
        each outcome is exact (a message batched into a concurrent create would also say CREATED).
        Conversations run in parallel.
        """
        groups: dict[str, list[Item]] = {}
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                item: Item = requests_for(line, self.context)
            except RecordError as exc:
                item = RecordError(exc.reason, f"line {number}: {exc.reason}: {exc}")
            key = f"line {number}"
            if isinstance(item, list) and item[0].message.conversation_id:
                key = "conversation " + item[0].message.conversation_id
            groups.setdefault(key, []).append(item)
        return sorted(groups.values(), key=len, reverse=True)

    async def _worker(self, queue: Iterator[list[Item]], progress: Progress) -> None:
        for group in queue:
            for item in group:
                self.summary.messages += 1
                if isinstance(item, RecordError):
                    self._fail(progress, item.reason, str(item))
                    progress.advance(failed=True)
                    continue
                failed = False
                for request in item:
                    try:
                        response = await self._add(request, progress)
                    except MessageLogError as exc:
                        failed = True
                        reason = exc.reason or exc.code.name
                        self._fail(progress, reason, f"message {request.message.id}: {exc}")
                    else:
                        self.summary.outcomes[_OUTCOMES[response.outcome]] += 1
                progress.advance(failed=failed)

    async def _add(
        self, request: service_pb.AddMessageLogRequest, progress: Progress
    ) -> service_pb.AddMessageLogResponse:
        for attempt in range(EXTRA_ATTEMPTS + 1):
            wait = self._paused_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                return await self.client.add_message_log(request, self.auth, on_crm_retries=progress.retried)
            except MessageLogError as exc:
                if not exc.retryable or attempt == EXTRA_ATTEMPTS:
                    raise
                delay = exc.retry_delay if exc.retry_delay is not None else 0.5 * 2**attempt
                if time.monotonic() + delay > self._paused_until:
                    progress.pause(delay, exc.reason or exc.code.name)
                self._paused_until = max(self._paused_until, time.monotonic() + delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _fail(self, progress: Progress, reason: str, line: str) -> None:
        self.summary.failures[reason] += 1
        shown = self.summary.failures[reason]
        if shown <= self.shown_failures_per_reason:
            progress.note(f"failed: {line}")
        elif shown == self.shown_failures_per_reason + 1:
            progress.note(f"failed: further {reason} failures are only counted")
