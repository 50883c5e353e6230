"""`messagelog`: log one message, backfill a message-store export, or check the service's health.

Every failure prints one line (`messagelog: ...`) and exits non-zero; never a traceback.
Exit codes: 0 success, 1 a call or a backfilled message failed, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import json_format

from messagelog.backfill import Backfill, Context, Progress, Summary
from messagelog.client import DEFAULT_TARGET, DEFAULT_TIMEOUT_SECONDS, MessageLogClient, MessageLogError
from messagelog.v1 import message_log_pb2 as pb
from messagelog.v1 import message_log_service_pb2 as service_pb

AUTH_ENV = "MESSAGELOG_CRM_AUTHORIZATION"
SERVICE_NAME = service_pb.DESCRIPTOR.services_by_name["MessageLogService"].full_name
TARGET_ENV = "MESSAGELOG_TARGET"
_TYPES = {
    "sms": pb.MESSAGE_TYPE_SMS,
    "pager": pb.MESSAGE_TYPE_PAGER,
    "voicemail": pb.MESSAGE_TYPE_VOICEMAIL,
    "fax": pb.MESSAGE_TYPE_FAX,
}
_DIRECTIONS = {"inbound": pb.MESSAGE_DIRECTION_INBOUND, "outbound": pb.MESSAGE_DIRECTION_OUTBOUND}


class UsageError(Exception):
    """Bad flags or an unreadable input file: exit code 2."""


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, not {text!r}")
    return key, value


def _global_flags(parser: argparse.ArgumentParser, *, defaults: bool, auth: bool) -> None:
    """--target, --timeout (and --crm-authorization), taken before or after the subcommand.

    The main parser holds the defaults; a subcommand's copy sets a value only when given, since
    argparse lets a subparser's default overwrite what was given before the subcommand.
    """

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument(
        "--target",
        default=default(os.environ.get(TARGET_ENV, DEFAULT_TARGET)),
        help=f"the service's host:port (env {TARGET_ENV}; default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(DEFAULT_TIMEOUT_SECONDS),
        help=f"seconds per call (default {DEFAULT_TIMEOUT_SECONDS})",
    )
    if auth:
        parser.add_argument(
            "--crm-authorization",
            default=default(os.environ.get(AUTH_ENV, "")),
            help=f'the Authorization value the CRM expects, such as "Bearer <token>" (env {AUTH_ENV})',
        )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    _global_flags(common, defaults=False, auth=False)
    auth = argparse.ArgumentParser(add_help=False)
    _global_flags(auth, defaults=False, auth=True)
    who = argparse.ArgumentParser(add_help=False)
    who.add_argument("--crm", help='the CRM registry key, such as "pipedrive"')
    who.add_argument("--user-id", help="the user's id in the CRM")
    who.add_argument("--hostname", help='the CRM account host, such as "acme.pipedrive.com"')
    who.add_argument("--time-zone", help='the user\'s IANA time zone, such as "America/New_York"')
    who.add_argument("--contact-id", help="the contact's id in the CRM")
    who.add_argument("--contact-name", default="", help="the contact's display name")
    who.add_argument("--contact-phone", default="", help="the contact's phone number (E.164)")
    who.add_argument(
        "--extra", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
        help="additional_submission entry, such as deals=77 (repeatable)",
    )  # fmt: skip

    parser = argparse.ArgumentParser(prog="messagelog", description=__doc__.split("\n")[0])
    _global_flags(parser, defaults=True, auth=True)
    commands = parser.add_subparsers(dest="command", required=True)

    log = commands.add_parser(
        "log", parents=[auth, who], help="log one message",
        description="Log one message, from flags or from an AddMessageLogRequest in proto JSON.",
    )  # fmt: skip
    log.add_argument("--request", metavar="FILE", help="AddMessageLogRequest as proto JSON; flags override")
    log.add_argument("--log-id", help="append to this record with UpdateMessageLog instead")
    log.add_argument("--message-id", help="the message-store id")
    log.add_argument("--conversation-id", help="the conversation id (required for SMS and pager)")
    log.add_argument("--type", choices=sorted(_TYPES), help="the message type (default sms)")
    log.add_argument("--direction", choices=sorted(_DIRECTIONS), help="who sent it (default inbound)")
    log.add_argument("--from", dest="sender", help="the sender's phone number")
    log.add_argument("--to", action="append", default=[], help="a recipient's phone number (repeatable)")
    log.add_argument("--text", help="the message text")
    log.add_argument("--time", help="creation time, ISO 8601 (default: now)")
    log.add_argument("--recording-link", help="a voicemail's recording link")
    log.add_argument("--fax-doc-link", help="a fax's document link")

    backfill = commands.add_parser(
        "backfill", parents=[auth, who], help="log every message of a message-store export",
        description="Log a JSON-lines export of RingCentral message-store records. Safe to re-run: "
        "messages already logged are counted as such and cost no CRM call.",
    )  # fmt: skip
    backfill.add_argument("file", help="JSON lines, one message-store record each")
    backfill.add_argument("--context", metavar="FILE", help="JSON: crm, user, contacts (see the README)")
    backfill.add_argument("--concurrency", type=int, default=8, help="calls in flight (default %(default)s)")
    backfill.add_argument(
        "--progress-every", type=float, default=5.0, metavar="SECONDS",
        help="progress line interval when stderr is not a terminal (default %(default)s)",
    )  # fmt: skip

    health = commands.add_parser("health", parents=[common], help="check grpc.health.v1")
    health.add_argument("--service", default="", help='the service to check (default "": the server)')
    return parser


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None


def _authorization(args: argparse.Namespace) -> str:
    if not args.crm_authorization:
        raise UsageError(f"no CRM authorization: pass --crm-authorization or set {AUTH_ENV}")
    return str(args.crm_authorization)


def _apply_who(args: argparse.Namespace, crm: Any, user: pb.CrmUser, contact: pb.Contact | None) -> str:
    """Copies the identity flags that were given onto the request parts; returns the crm."""
    for flag, attr in (("user_id", "id"), ("hostname", "hostname"), ("time_zone", "time_zone")):
        if getattr(args, flag):
            setattr(user, attr, getattr(args, flag))
    if contact is not None:
        for flag, attr in (("contact_id", "id"), ("contact_name", "name"), ("contact_phone", "phone_number")):
            if getattr(args, flag):
                setattr(contact, attr, getattr(args, flag))
    return str(args.crm or crm)


def _log_request(args: argparse.Namespace) -> service_pb.AddMessageLogRequest:
    request = service_pb.AddMessageLogRequest()
    if args.request:
        try:
            json_format.ParseDict(_read_json(args.request), request)
        except json_format.ParseError as exc:
            raise UsageError(f"{args.request} is not an AddMessageLogRequest: {exc}") from None
    request.crm = _apply_who(args, request.crm, request.user, request.contact)
    request.additional_submission.update(dict(args.extra))
    message = request.message
    for flag, attr in (("message_id", "id"), ("conversation_id", "conversation_id"), ("text", "subject")):
        if getattr(args, flag):
            setattr(message, attr, getattr(args, flag))
    if args.type or not message.type:
        message.type = _TYPES[args.type or "sms"]
    if args.direction or not message.direction:
        message.direction = _DIRECTIONS[args.direction or "inbound"]
    if args.sender:
        message.sender.phone_number = args.sender
    if args.to:
        del message.recipients[:]
        message.recipients.extend(pb.Party(phone_number=n) for n in args.to)
    if args.time:
        try:
            at = datetime.fromisoformat(args.time.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--time {args.time!r} is not an ISO 8601 time") from None
        message.creation_time.FromDatetime(at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC))
    elif not message.HasField("creation_time"):
        message.creation_time.GetCurrentTime()
    request.recording_link = args.recording_link or request.recording_link
    request.fax_doc_link = args.fax_doc_link or request.fax_doc_link
    return request


def _log(args: argparse.Namespace) -> int:
    return asyncio.run(_send_log(args, _log_request(args), _authorization(args)))


async def _send_log(args: argparse.Namespace, request: service_pb.AddMessageLogRequest, auth: str) -> int:
    async with MessageLogClient(args.target, timeout=args.timeout) as client:
        if args.log_id:
            update = service_pb.UpdateMessageLogRequest(log_id=args.log_id)
            for name in ("crm", "recording_link", "fax_doc_link"):
                setattr(update, name, getattr(request, name))
            for name in ("user", "contact", "message"):
                getattr(update, name).CopyFrom(getattr(request, name))
            update.additional_submission.update(request.additional_submission)
            updated = await client.update_message_log(update, auth)
            outcome, log_id, local_date = updated.outcome, updated.log_id, ""
        else:
            added = await client.add_message_log(request, auth)
            outcome, log_id, local_date = added.outcome, added.log_id, added.local_date
    name = pb.LogOutcome.Name(outcome).removeprefix("LOG_OUTCOME_").lower().replace("_", " ")
    print(f"{name}: log_id={log_id}" + (f" local_date={local_date}" if local_date else ""))
    return 0


def _context(args: argparse.Namespace) -> Context:
    context = Context.from_json(_read_json(args.context)) if args.context else Context("", pb.CrmUser())
    contact = None
    if args.contact_id:
        contact = pb.Contact()
        context.contacts.append(contact)
    context.crm = _apply_who(args, context.crm, context.user, contact)
    context.additional_submission.update(dict(args.extra))
    if not context.crm or not context.contacts:
        raise UsageError("backfill needs a crm and at least one contact (--context FILE or flags)")
    return context


def _backfill(args: argparse.Namespace) -> int:
    if args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    try:
        context = _context(args)
    except ValueError as exc:
        raise UsageError(f"bad context: {exc}") from None
    auth = _authorization(args)
    try:
        with open(args.file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {args.file}: {exc}") from None
    total = sum(1 for line in lines if line.strip())
    progress = Progress(total, sys.stderr, every=args.progress_every)
    summary = asyncio.run(_run_backfill(args, context, auth, lines, progress))
    print("\n".join(summary.lines()))
    return 1 if summary.failed else 0


async def _run_backfill(
    args: argparse.Namespace, context: Context, auth: str, lines: list[str], progress: Progress
) -> Summary:
    # Backfill retries itself, pausing every worker when one is told to wait.
    async with MessageLogClient(args.target, timeout=args.timeout, retries=0) as client:
        # Without this, a wrong --target would surface as one retried failure per message.
        await client.health(timeout=min(args.timeout, 10))
        return await Backfill(client, context, auth, concurrency=args.concurrency).run(lines, progress)


def _health(args: argparse.Namespace) -> int:
    return asyncio.run(_check_health(args))


async def _check_health(args: argparse.Namespace) -> int:
    async with MessageLogClient(args.target, timeout=args.timeout) as client:
        try:
            status = await client.health(args.service, timeout=args.timeout)
        except MessageLogError as exc:
            if exc.code is not grpc.StatusCode.NOT_FOUND:
                raise
            raise UsageError(
                f"the service at {args.target} reports no health for {args.service!r};"
                f' ask for "" (the server) or {SERVICE_NAME}'
            ) from None
    print(status)
    return 0 if status == "SERVING" else 1


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = {"log": _log, "backfill": _backfill, "health": _health}[args.command]
    try:
        return command(args)
    except MessageLogError as exc:
        # A status without ErrorInfo came from gRPC itself, not the service: usually a wrong target.
        unreached = not exc.reason and exc.code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
        hint = f" (no answer from the service at {args.target})" if unreached else ""
        print(f"messagelog: {exc}{hint}", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"messagelog: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("messagelog: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
