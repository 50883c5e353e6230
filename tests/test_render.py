"""How a record reads: order, time zone, counts, and text that cannot garble the structure."""

from __future__ import annotations

import sys
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from service.model import ContactInfo, Direction, Entry, Kind
from service.render import BodyFormat, DigestView, clean, render

CONTACT = ContactInfo("42", "Jane Doe", "+16505553204", "person", "", "")
NEW_YORK = ZoneInfo("America/New_York")
START = datetime(2026, 11, 20, 14, 0, tzinfo=UTC)


def entry(i: int, text: str, *, inbound: bool = True, minutes: int | None = None) -> Entry:
    return Entry(
        message_id=f"m{i}",
        created_at=START + timedelta(minutes=i if minutes is None else minutes),
        direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
        text=text,
        sender_name="",
        sender_phone="+16505553204" if inbound else "+18885550052",
    )


def view(entries: list[Entry], kind: Kind = Kind.SMS) -> DigestView:
    return DigestView(kind, CONTACT, "Alice Agent", NEW_YORK, "America/New_York", date(2026, 11, 20), entries)


def test_entries_are_shown_in_creation_order_with_local_times_and_a_count() -> None:
    record = render(
        view([entry(2, "third"), entry(0, "first"), entry(1, "second", inbound=False)]), BodyFormat.TEXT
    )

    body = record.body
    assert body.index("first") < body.index("second") < body.index("third")
    assert "Jane Doe (+16505553204) at 9:00 AM EST\n    first" in body
    assert "Alice Agent at 9:01 AM EST\n    second" in body
    assert "Conversation (3 messages)" in body
    assert "Friday, November 20, 2026 (times in America/New_York)" in body
    assert record.subject == "SMS conversation with Jane Doe - 2026-11-20"
    assert record.message_count == 3
    assert record.first_time == START


def test_one_message_is_counted_in_the_singular() -> None:
    assert "Conversation (1 message)\n" in render(view([entry(0, "hi")]), BodyFormat.TEXT).body


def test_voicemail_and_fax_records_carry_their_links_and_say_when_one_is_missing() -> None:
    voicemail = Entry(
        "v1", START, Direction.INBOUND, "", "", "+16505553204", recording_link="https://x.example/v.mp3"
    )
    fax = Entry("f1", START, Direction.OUTBOUND, "", "", "+18885550052")

    vm_body = render(view([voicemail], Kind.VOICEMAIL), BodyFormat.HTML).body
    fax_record = render(view([fax], Kind.FAX), BodyFormat.TEXT)

    assert '<a href="https://x.example/v.mp3">' in vm_body
    assert fax_record.subject == "Fax document sent to Jane Doe - 2026-11-20"
    assert "Fax document link: not provided" in fax_record.body


def _structure(body: str) -> list[str]:
    """The lines of a text body that are the record's own (not indented message text)."""
    return [line for line in body.split("\n") if line and not line.startswith("    ")]


hostile_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300
) | st.sampled_from(
    [
        "------------\nEND",
        "END",
        "BEGIN",
        "Conversation (99 messages)",
        "</li></ul><b>x</b>",
        "\u202eevil",
        "line\r\nbreak\rmac",
        "\x00\x07\x1b[31mred",
        '=HYPERLINK("http://x")',
        "<script>alert(1)</script>",
    ]
)


@settings(max_examples=150, deadline=None)
@given(texts=st.lists(hostile_text, min_size=1, max_size=5))
def test_no_message_text_adds_structure_to_a_text_record(texts: list[str]) -> None:
    plain = render(view([entry(0, "baseline")]), BodyFormat.TEXT).body
    record = render(view([entry(i, text) for i, text in enumerate(texts)]), BodyFormat.TEXT)

    structure = _structure(record.body)
    # The record's own lines are the same as for harmless text, plus one sender line per message.
    expected = [line for line in _structure(plain) if not line.startswith("Jane Doe (")]
    assert [line for line in structure if not line.startswith("Jane Doe (")] == [
        line.replace("1 message", f"{len(texts)} message" + ("s" if len(texts) > 1 else ""))
        for line in expected
    ]
    assert not any(ch in record.body for ch in "\r\x00\x07\x1b\u202e")


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.tags.append("/" + tag)


def _tags(body: str) -> list[str]:
    parser = _Tags()
    parser.feed(body)
    return parser.tags


@settings(max_examples=150, deadline=None)
@given(text=hostile_text)
def test_no_message_text_adds_a_tag_to_an_html_record(text: str) -> None:
    single_line = render(view([entry(0, "baseline")]), BodyFormat.HTML).body
    record = render(view([entry(0, text)]), BodyFormat.HTML).body

    tags = [t for t in _tags(record) if t != "br"]
    assert tags == [t for t in _tags(single_line) if t != "br"]


def _clean_by_the_definition(text: str) -> str:
    """clean() as its docstring defines it, asking the Unicode database about each character."""
    # Every line break str.splitlines() knows (CRLF one break) becomes a newline.
    lines = [(line, line.splitlines()[0]) for line in text.splitlines(keepends=True)]
    text = "".join(bare + "\n" if bare != line else line for line, bare in lines)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch) not in ("Cc", "Cf"))


def test_clean_drops_every_control_and_format_character_but_newline_and_tab() -> None:
    every_character = "".join(map(chr, range(sys.maxunicode + 1)))

    assert clean(every_character) == _clean_by_the_definition(every_character)


@settings(max_examples=300, deadline=None)
@given(text=hostile_text | st.text(alphabet=st.sampled_from("\r\n\t \u202e\u200b\x00\x85ab")))
def test_clean_agrees_with_its_definition_on_any_text(text: str) -> None:
    assert clean(text) == _clean_by_the_definition(text)


@settings(max_examples=150, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    zone=st.sampled_from([NEW_YORK, ZoneInfo("Asia/Kolkata"), ZoneInfo("Australia/Lord_Howe"), UTC]),
)
def test_dates_and_times_read_as_strftime_writes_them(moment: datetime, zone: ZoneInfo) -> None:
    local = moment.astimezone(zone)
    day = local.date()
    message = replace(entry(0, "hi"), created_at=moment)
    record = render(DigestView(Kind.SMS, CONTACT, "", zone, "Zone", day, [message]), BodyFormat.TEXT)

    clock = f"{local.hour % 12 or 12}:{local:%M} {local:%p} {local.tzname() or ''}".rstrip()
    assert f"{day:%A}, {day:%B} {day.day}, {day.year} (times in Zone)" in record.body
    assert f"Jane Doe (+16505553204) at {clock}\n" in record.body
