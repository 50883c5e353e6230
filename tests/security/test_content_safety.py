"""Content safety: caller text cannot add markup, fake the digest's structure, or start a formula."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from service.adapters.googlesheets import _inert
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


@pytest.mark.parametrize("text", ['=HYPERLINK("http://evil")', "+1+1", "-2+3", "@SUM(A1)", "\t=1", "\r=1"])
def test_a_sheet_cell_never_starts_a_formula(text: str) -> None:
    cell = _inert(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert text in cell
