"""Renders a CRM record (subject and body) from the entries our store keeps for it.

A record is always rendered whole from stored entries, never by editing text already in the CRM,
so a message's content cannot break later appends. Caller text is made inert for the target
format: escaped for HTML, indented for plain text so no line of a message can pass for the
record's own structure, and stripped of control and bidirectional-override characters.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from enum import StrEnum

from service.model import ContactInfo, Direction, Entry, Kind

FOOTER = "--- Created via messagelog"
SUBJECT_LIMIT = 255
TEXT_INDENT = "    "
_RULE = "------------"


class BodyFormat(StrEnum):
    HTML = "html"
    TEXT = "text"


@dataclass(frozen=True)
class RenderedRecord:
    """What an adapter writes into its CRM's record."""

    kind: Kind
    subject: str
    body: str
    local_date: date
    first_time: datetime
    last_time: datetime
    message_count: int


@dataclass(frozen=True)
class DigestView:
    kind: Kind
    contact: ContactInfo
    user_name: str
    zone: tzinfo
    zone_label: str
    local_date: date
    entries: Sequence[Entry]


def clean(text: str) -> str:
    """Drops characters that would garble what a person reads: controls (but newline and tab) and
    bidirectional overrides, which can make a line display in an order other than it was written."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf"))


def one_line(text: str) -> str:
    return " ".join(clean(text).split())


def ordered(entries: Sequence[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.created_at, e.message_id))


def render(view: DigestView, fmt: BodyFormat) -> RenderedRecord:
    entries = ordered(view.entries)
    if not entries:
        raise ValueError("a record needs at least one entry")
    contact = _contact_label(view.contact)
    day = view.local_date.isoformat()
    if view.kind is Kind.SMS:
        subject = f"SMS conversation with {contact} - {day}"
    elif view.kind is Kind.VOICEMAIL:
        subject = f"Voicemail left by {contact} - {day}"
    elif entries[0].direction is Direction.INBOUND:
        subject = f"Fax document sent from {contact} - {day}"
    else:
        subject = f"Fax document sent to {contact} - {day}"
    subject = one_line(subject)[:SUBJECT_LIMIT]
    writer = _HtmlWriter() if fmt is BodyFormat.HTML else _TextWriter()
    if view.kind is Kind.SMS:
        body = _conversation(writer, view, subject, entries)
    else:
        body = _single(writer, view, subject, entries[0])
    return RenderedRecord(
        kind=view.kind,
        subject=subject,
        body=body,
        local_date=view.local_date,
        first_time=entries[0].created_at,
        last_time=entries[-1].created_at,
        message_count=len(entries),
    )


def _contact_label(contact: ContactInfo) -> str:
    return one_line(contact.name) or contact.phone_number or f"contact {one_line(contact.id)}"


def _long_date(day: date) -> str:
    return f"{day:%A}, {day:%B} {day.day}, {day.year}"


def _clock(moment: datetime, zone: tzinfo) -> str:
    return moment.astimezone(zone).strftime("%I:%M %p")


def _sender(view: DigestView, entry: Entry) -> str:
    if entry.direction is Direction.OUTBOUND:
        return one_line(view.user_name) or one_line(entry.sender_name) or entry.sender_phone or "User"
    contact = view.contact
    if entry.sender_phone and contact.phone_number and entry.sender_phone != contact.phone_number:
        # A group conversation: someone other than the contact wrote this one.
        name = one_line(entry.sender_name)
        return f"{name} ({entry.sender_phone})" if name else entry.sender_phone
    phone = contact.phone_number or entry.sender_phone
    label = _contact_label(contact)
    return f"{label} ({phone})" if phone and phone != label else label


def _participants(view: DigestView, entries: Sequence[Entry]) -> list[str]:
    people = [one_line(view.user_name) or "User", _sender(view, _as_inbound_from_contact(view))]
    for entry in entries:
        if entry.direction is Direction.INBOUND:
            label = _sender(view, entry)
            if label not in people:
                people.append(label)
    return people


def _as_inbound_from_contact(view: DigestView) -> Entry:
    return Entry(
        message_id="",
        created_at=datetime.min,
        direction=Direction.INBOUND,
        text="",
        sender_name="",
        sender_phone=view.contact.phone_number,
    )


class _Writer:
    def heading(self, text: str) -> str:
        raise NotImplementedError

    def line(self, text: str) -> str:
        raise NotImplementedError

    def items(self, items: Sequence[str]) -> str:
        raise NotImplementedError

    def message(self, header: str, text: str, links: Sequence[tuple[str, str]]) -> str:
        raise NotImplementedError

    def messages(self, rendered: Sequence[str]) -> str:
        raise NotImplementedError

    def link_line(self, label: str, url: str) -> str:
        raise NotImplementedError

    def join(self, parts: Sequence[str]) -> str:
        raise NotImplementedError


class _TextWriter(_Writer):
    def heading(self, text: str) -> str:
        return one_line(text)

    def line(self, text: str) -> str:
        return one_line(text)

    def items(self, items: Sequence[str]) -> str:
        return "\n".join(f"- {one_line(item)}" for item in items)

    def message(self, header: str, text: str, links: Sequence[tuple[str, str]]) -> str:
        lines = [one_line(header)]
        body = clean(text).strip("\n")
        lines += [TEXT_INDENT + part for part in body.split("\n")] if body else []
        lines += [f"{TEXT_INDENT}[{label}] {url}" for label, url in links]
        return "\n".join(lines)

    def messages(self, rendered: Sequence[str]) -> str:
        return "\n".join(rendered)

    def link_line(self, label: str, url: str) -> str:
        return f"{label}: {url or 'not provided'}"

    def join(self, parts: Sequence[str]) -> str:
        return "\n".join(parts)


class _HtmlWriter(_Writer):
    def heading(self, text: str) -> str:
        return f"<b>{_h(one_line(text))}</b><br>"

    def line(self, text: str) -> str:
        return f"{_h(one_line(text))}<br>"

    def items(self, items: Sequence[str]) -> str:
        return "<ul>" + "".join(f"<li>{_h(one_line(item))}</li>" for item in items) + "</ul>"

    def message(self, header: str, text: str, links: Sequence[tuple[str, str]]) -> str:
        body = "<br>".join(_h(part) for part in clean(text).strip("\n").split("\n"))
        parts = [f"<b>{_h(one_line(header))}</b>"]
        if body:
            parts.append(body)
        parts += [_anchor(label, url) for label, url in links]
        return "<li>" + "<br>".join(parts) + "</li>"

    def messages(self, rendered: Sequence[str]) -> str:
        return "<ul>" + "".join(rendered) + "</ul>"

    def link_line(self, label: str, url: str) -> str:
        return (_anchor(label, url) if url else f"{_h(label)}: not provided") + "<br>"

    def join(self, parts: Sequence[str]) -> str:
        return "".join(p if p.endswith((">", "</ul>")) else p + "<br>" for p in parts)


def _anchor(label: str, url: str) -> str:
    return f'{_h(label)}: <a href="{_h(url)}">{_h(url)}</a>'


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _media_label(content_type: str) -> str:
    kind = content_type.split("/", 1)[0]
    return {"image": "Image", "video": "Video", "audio": "Audio"}.get(kind, "Document")


def _conversation(writer: _Writer, view: DigestView, subject: str, entries: Sequence[Entry]) -> str:
    count = len(entries)
    rendered = []
    for entry in entries:
        header = f"{_sender(view, entry)} {_clock(entry.created_at, view.zone)}"
        links = [(_media_label(m.content_type), m.url) for m in entry.media]
        rendered.append(writer.message(header, entry.text, links))
    return writer.join(
        [
            writer.heading(subject),
            writer.heading("Conversation summary"),
            writer.line(f"{_long_date(view.local_date)} (times in {view.zone_label})"),
            writer.heading("Participants"),
            writer.items(_participants(view, entries)),
            writer.heading(f"Conversation ({count} message{'' if count == 1 else 's'})"),
            writer.line("BEGIN"),
            writer.line(_RULE),
            writer.messages(rendered),
            writer.line(_RULE),
            writer.line("END"),
            writer.line(FOOTER),
        ]
    )


def _single(writer: _Writer, view: DigestView, subject: str, entry: Entry) -> str:
    when = f"{_long_date(view.local_date)} {_clock(entry.created_at, view.zone)} ({view.zone_label})"
    parts = [writer.heading(subject), writer.line(f"{_sender(view, entry)}, {when}")]
    if view.kind is Kind.VOICEMAIL:
        parts.append(writer.link_line("Voicemail recording link", entry.recording_link))
    else:
        parts.append(writer.link_line("Fax document link", entry.fax_doc_link))
    if entry.text.strip():
        parts.append(
            writer.messages(
                [writer.message("Transcript" if view.kind is Kind.VOICEMAIL else "Note", entry.text, [])]
            )
        )
    parts.append(writer.line(FOOTER))
    return writer.join(parts)
