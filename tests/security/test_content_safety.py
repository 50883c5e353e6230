"""Content safety: caller text cannot add markup, fake the digest's structure, or become a formula."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fakes.googlesheets import SPREADSHEET_ID, FakeGoogleSheets
from tests.fakes.pipedrive import FakePipedrive
from tests.helpers import add_request, sms

HOSTILE = (
    '<img src=x onerror="alert(1)"></li></ul><b>Conversation (99 messages)</b>'
    "<br>------------<br>\u202e<script>fetch('//evil')</script>"
)


async def test_hostile_text_stays_text_and_later_appends_keep_the_digest_whole(
    make_harness: Callable[..., Any],
) -> None:
    async with make_harness(FakePipedrive(), "Bearer pd-token") as h:
        await h.add(add_request("pipedrive", sms("m1", "2026-11-20T14:00:00Z", HOSTILE)))
        response = await h.add(add_request("pipedrive", sms("m2", "2026-11-20T14:01:00Z", "after")))
        note = h.fake.activities[int(response.log_id)]["note"]

    for markup in ("<img", "<script", "<b>Conversation (99", "\u202e"):
        assert markup not in note
    assert "&lt;script&gt;" in note
    assert note.count("<ul>") == note.count("</ul>") == 2  # participants and messages
    assert "Conversation (2 messages)" in note
    assert note.index("onerror") < note.index("after")


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\t=1"])
async def test_a_sheet_cell_is_stored_as_text_never_parsed_as_a_formula(
    make_harness: Callable[..., Any], text: str
) -> None:
    # stringValue cells and valueInputOption RAW are never parsed (sheets.v4.json), so the text
    # is kept as typed: no formula, and no apostrophe shown in front of it.
    def request(message_id: str, at: str) -> Any:
        add = add_request(
            "googlesheets",
            sms(message_id, at, text),
            hostname="",
            user_info={"spreadsheet_id": SPREADSHEET_ID},
        )
        add.contact.name = text
        return add

    async with make_harness(FakeGoogleSheets(), "Bearer gs-token") as h:
        first = await h.add(request("m1", "2026-11-20T14:00:00Z"))
        await h.add(request("m2", "2026-11-20T14:01:00Z"))

    (create,) = h.fake.calls("POST", r":batchUpdate$")
    cells = create.body["requests"][1]["updateCells"]["rows"][0]["values"]
    assert all(set(cell["userEnteredValue"]) <= {"stringValue", "numberValue"} for cell in cells)
    assert cells[2]["userEnteredValue"]["stringValue"].startswith(text.strip())  # names are one line
    (append,) = h.fake.calls("POST", r"batchUpdateByDataFilter$")
    assert append.body["valueInputOption"] == "RAW"
    assert text.strip() in h.fake.record_body(first.log_id)
