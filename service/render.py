"""Renders a CRM record (subject and body) from the entries our store keeps for it.

A record is always rendered whole from stored entries, never by editing text already in the CRM,
so a message's content cannot break later appends. Caller text is made inert for the target
format: escaped for HTML, indented for plain text so no line of a message can pass for the
record's own structure, and stripped of control and bidirectional-override characters.
"""

from __future__ import annotations

import hashlib
import html
import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum

from service.model import ContactInfo, Direction, Entry, Kind

FOOTER = "--- Created via messagelog"
SUBJECT_LIMIT = 255
TEXT_INDENT = "    "
NO_TEXT = "(no text)"
_RULE = "------------"
# Spelled out rather than left to strftime, which costs more and follows LC_TIME should anything set it.
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_TAG = re.compile(r"<[^>]*>")


def _unreadable_characters() -> re.Pattern[str]:
    """A character class of every control (Cc) and format (Cf) character but newline and tab, from
    this Python's Unicode database (bidirectional overrides are format characters). Scanning every
    code point takes ~0.1 s, once; asking the database about each character of each text cost more
    than all the rest of a render."""
    codes = [
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in ("Cc", "Cf") and chr(code) not in "\n\t"
    ]
    runs: list[list[int]] = []
    for code in codes:
        if runs and runs[-1][1] == code - 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return re.compile("[" + "".join(f"\\U{first:08x}-\\U{last:08x}" for first, last in runs) + "]")


_UNREADABLE = _unreadable_characters()
_LINE_BREAKS = str.maketrans(dict.fromkeys("\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", "\n"))


class BodyFormat(StrEnum):
    HTML = "html"
    TEXT = "text"


@dataclass(frozen=True)
class RenderedRecord:
    """What an adapter writes into its CRM's record."""

    kind: Kind
    subject: str
    body: str
    # Who sent the first message: for a voicemail or fax, who sent it; for a digest, who began it.
    direction: Direction
    local_date: date
    first_time: datetime
    last_time: datetime
    message_count: int
    # The digest's reference (its marker, ref_marker(ref), ends the body), for CRMs that can also
    # tag a record with it and find it by the tag; "" for records that carry none.
    ref: str = ""


@dataclass(frozen=True)
class DigestView:
    kind: Kind
    contact: ContactInfo
    user_name: str
    zone: tzinfo
    zone_label: str
    local_date: date
    entries: Sequence[Entry]
    # The digest's reference, written in the footer so a record can be found again.
    ref: str = ""
    # A person's edit of the record, kept verbatim; entries then holds only the messages after it.
    kept_body: str | None = None
    # How many messages the kept text holds, and when the first of them was sent.
    kept_count: int = 0
    first_time: datetime = datetime.min
    # Which part of its conversation-day the record is, and the CRM record of the part before it
    # (a day past a record's cap continues in a record of its own).
    part: int = 1
    continues_log_id: str = ""


def fingerprint(body: str) -> str:
    """What a record says, ignoring markup and spacing: a CRM that reformats what we wrote (its
    HTML sanitizer, its line endings) leaves the fingerprint alone; a person's edit changes it."""
    text = html.unescape(_TAG.sub(" ", body))
    return hashlib.sha256(" ".join(text.split()).encode()).hexdigest()


def ref_marker(ref: str) -> str:
    """The text a record carries to say which digest it is."""
    return f"(ref {ref})"


def ref_in(marker: str) -> str:
    """The reference a ref_marker names (for CRMs that are searched by the bare reference)."""
    return marker.removeprefix("(ref ").removesuffix(")")


def clean(text: str) -> str:
    """Drops characters that would garble what a person reads: controls (but newline and tab) and
    bidirectional overrides, which can make a line display in an order other than it was written.
    Every other line break (CR, NEL, the line and paragraph separators, vertical tab, form feed,
    the file/group/record separators: those str.splitlines() honours) becomes a newline, so a
    writer indents or breaks the line it starts like any other rather than let it pass for a
    line of the record's own."""
    if text.isprintable():  # then it holds no control, format or separator character: most text
        return text
    text = text.replace("\r\n", "\n").translate(_LINE_BREAKS)
    return _UNREADABLE.sub("", text)


def one_line(text: str) -> str:
    return " ".join(clean(text).split())


def ordered(entries: Sequence[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.created_at, e.message_id))


def render(view: DigestView, fmt: BodyFormat) -> RenderedRecord:
    entries = ordered(view.entries)
    if not entries and view.kept_body is None:
        raise ValueError("a record needs at least one entry")
    contact = _contact_label(view.contact)
    day = view.local_date.isoformat()
    if view.kind is Kind.SMS:
        subject = f"SMS conversation with {contact} - {day}"
        if view.part > 1:
            subject += f" (part {view.part})"
    elif view.kind is Kind.VOICEMAIL:
        subject = f"Voicemail left by {contact} - {day}"
    elif entries[0].direction is Direction.INBOUND:
        subject = f"Fax document sent from {contact} - {day}"
    else:
        subject = f"Fax document sent to {contact} - {day}"
    subject = one_line(subject)[:SUBJECT_LIMIT]
    writer: _Writer = _HtmlWriter() if fmt is BodyFormat.HTML else _TextWriter()
    if view.kept_body is not None:
        body = _after_kept(writer, view, entries)
    elif view.kind is Kind.SMS:
        body = _conversation(writer, view, subject, entries)
    else:
        body = _single(writer, view, subject, entries[0])
    return RenderedRecord(
        kind=view.kind,
        subject=subject,
        body=body,
        direction=entries[0].direction if entries else Direction.INBOUND,
        local_date=view.local_date,
        # A kept edit holds the digest's earliest messages or some of them; the view knows the first.
        first_time=view.first_time if view.kept_body is not None else entries[0].created_at,
        last_time=entries[-1].created_at if entries else view.first_time,
        message_count=len(entries) + view.kept_count,
        ref=view.ref,
    )


def _contact_label(contact: ContactInfo) -> str:
    return one_line(contact.name) or contact.phone_number or f"contact {one_line(contact.id)}"


def _long_date(day: date) -> str:
    return f"{_WEEKDAYS[day.weekday()]}, {_MONTHS[day.month - 1]} {day.day}, {day.year}"


def _clock(moment: datetime, zone: tzinfo) -> str:
    """9:05 AM EST: the abbreviation tells a reader which side of a DST change a time is on."""
    local = moment.astimezone(zone)
    hour = local.hour % 12 or 12
    return f"{hour}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'} {local.tzname() or ''}".rstrip()


def _sender(view: DigestView, entry: Entry) -> str:
    if entry.direction is Direction.OUTBOUND:
        return one_line(view.user_name) or one_line(entry.sender_name) or entry.sender_phone or "User"
    contact = view.contact
    if entry.sender_phone and contact.phone_number and entry.sender_phone != contact.phone_number:
        # A group conversation: someone other than the contact wrote this one.
        name = one_line(entry.sender_name)
        return f"{name} ({entry.sender_phone})" if name else entry.sender_phone
    label = _contact_label(contact)
    phone = contact.phone_number or entry.sender_phone
    return f"{label} ({phone})" if phone and phone != label else label


def _participants(view: DigestView, entries: Sequence[Entry]) -> list[str]:
    contact = _contact_label(view.contact)
    if view.contact.phone_number and view.contact.phone_number != contact:
        contact = f"{contact} ({view.contact.phone_number})"
    people = [one_line(view.user_name) or "User", contact]
    for entry in entries:
        label = _sender(view, entry)
        if entry.direction is Direction.INBOUND and label not in people:
            people.append(label)
    return people


def _media_label(content_type: str) -> str:
    kind = content_type.split("/", 1)[0]
    return {"image": "Image", "video": "Video", "audio": "Audio"}.get(kind, "Document")


class _Writer:
    """Builds a record body from blocks; each format decides how a block looks and is made safe."""

    def __init__(self) -> None:
        self.blocks: list[str] = []

    def heading(self, text: str) -> None:
        raise NotImplementedError

    def line(self, text: str) -> None:
        raise NotImplementedError

    def link(self, label: str, url: str) -> None:
        raise NotImplementedError

    def items(self, items: Sequence[str]) -> None:
        raise NotImplementedError

    def messages(self, messages: Sequence[tuple[str, str, Sequence[tuple[str, str]]]]) -> None:
        """Each message: a header (sender and time), its text, and (label, url) links."""
        raise NotImplementedError

    def gap(self) -> None:
        raise NotImplementedError

    def body(self) -> str:
        raise NotImplementedError


class _TextWriter(_Writer):
    def heading(self, text: str) -> None:
        self.blocks.append(one_line(text))

    line = heading

    def link(self, label: str, url: str) -> None:
        self.blocks.append(f"{label}: {url or 'not provided'}")

    def items(self, items: Sequence[str]) -> None:
        self.blocks.extend(f"- {one_line(item)}" for item in items)

    def messages(self, messages: Sequence[tuple[str, str, Sequence[tuple[str, str]]]]) -> None:
        rendered = []
        for header, text, links in messages:
            lines = [one_line(header)]
            body = clean(text).strip("\n")
            # Indented, so no line a person wrote can pass for the record's own markers.
            lines += [TEXT_INDENT + part for part in body.split("\n")] if body else []
            lines += [f"{TEXT_INDENT}[{label}] {url}" for label, url in links]
            if len(lines) == 1:
                lines.append(TEXT_INDENT + NO_TEXT)
            rendered.append("\n".join(lines))
        self.blocks.append("\n\n".join(rendered))

    def gap(self) -> None:
        self.blocks.append("")

    def body(self) -> str:
        return "\n".join(self.blocks)


class _HtmlWriter(_Writer):
    def heading(self, text: str) -> None:
        self.blocks.append(f"<b>{_h(one_line(text))}</b><br>")

    def line(self, text: str) -> None:
        self.blocks.append(f"{_h(one_line(text))}<br>")

    def link(self, label: str, url: str) -> None:
        self.blocks.append((_anchor(label, url) if url else f"{_h(label)}: not provided") + "<br>")

    def items(self, items: Sequence[str]) -> None:
        self.blocks.append("<ul>" + "".join(f"<li>{_h(one_line(item))}</li>" for item in items) + "</ul>")

    def messages(self, messages: Sequence[tuple[str, str, Sequence[tuple[str, str]]]]) -> None:
        rendered = []
        for header, text, links in messages:
            parts = [f"<b>{_h(one_line(header))}</b>"]
            body = clean(text).strip("\n")
            if body:
                parts.append("<br>".join(_h(part) for part in body.split("\n")))
            parts += [_anchor(label, url) for label, url in links]
            if len(parts) == 1:
                parts.append(NO_TEXT)
            rendered.append("<li>" + "<br>".join(parts) + "</li>")
        self.blocks.append("<ul>" + "".join(rendered) + "</ul>")

    def gap(self) -> None:
        self.blocks.append("<br>")

    def body(self) -> str:
        return "".join(self.blocks)


def _anchor(label: str, url: str) -> str:
    return f'{_h(label)}: <a href="{_h(url)}">{_h(url)}</a>'


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _conversation(writer: _Writer, view: DigestView, subject: str, entries: Sequence[Entry]) -> str:
    count = len(entries)
    writer.heading(subject)
    writer.gap()
    writer.heading("Conversation summary")
    writer.line(f"{_long_date(view.local_date)} (times in {view.zone_label})")
    if view.continues_log_id:
        writer.line(f"Part {view.part}: continues the conversation of record {view.continues_log_id}")
    writer.gap()
    writer.heading("Participants")
    writer.items(_participants(view, entries))
    writer.gap()
    writer.heading(f"Conversation ({count} message{'' if count == 1 else 's'})")
    writer.line("BEGIN")
    writer.line(_RULE)
    writer.messages(
        [
            (
                f"{_sender(view, e)} at {_clock(e.created_at, view.zone)}",
                e.text,
                [(_media_label(m.content_type), m.url) for m in e.media],
            )
            for e in entries
        ]
    )
    writer.line(_RULE)
    writer.line("END")
    writer.gap()
    writer.line(_footer(view))
    return writer.body()


def _footer(view: DigestView) -> str:
    return f"{FOOTER} {ref_marker(view.ref)}" if view.ref else FOOTER


def _after_kept(writer: _Writer, view: DigestView, entries: Sequence[Entry]) -> str:
    """A person's edit of the record, verbatim, then the messages that came after it."""
    count = len(entries)
    writer.gap()
    writer.heading(f"Later messages ({count} message{'' if count == 1 else 's'})")
    writer.messages(
        [
            (
                f"{_sender(view, e)} at {_clock(e.created_at, view.zone)}",
                e.text,
                [(_media_label(m.content_type), m.url) for m in e.media],
            )
            for e in entries
        ]
    )
    writer.gap()
    writer.line(_footer(view))
    separator = "" if isinstance(writer, _HtmlWriter) else "\n"
    return (view.kept_body or "").rstrip() + separator + writer.body()


def _single(writer: _Writer, view: DigestView, subject: str, entry: Entry) -> str:
    writer.heading(subject)
    writer.gap()
    writer.line(
        f"{_sender(view, entry)}, {_long_date(view.local_date)} at {_clock(entry.created_at, view.zone)}"
    )
    if view.kind is Kind.VOICEMAIL:
        writer.link("Voicemail recording link", entry.recording_link)
    else:
        writer.link("Fax document link", entry.fax_doc_link)
    if entry.text.strip():
        writer.gap()
        writer.messages([("Transcript" if view.kind is Kind.VOICEMAIL else "Note", entry.text, [])])
    writer.gap()
    writer.line(_footer(view))
    return writer.body()
