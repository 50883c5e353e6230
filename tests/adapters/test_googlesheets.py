"""Google Sheets' quirks: one tagged row per record, cells stored as typed, the sheet lookup, the
cell limit, a person's edit read back before an append, and a lost create found by its tag."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from messagelog.v1 import message_log_pb2 as pb

from service.adapters.googlesheets import CELL_LIMIT, HEADER
from tests.adapters.lost_create import SETTLE_SECONDS, lose_create_then_retry
from tests.conftest import Harness
from tests.fakes.googlesheets import SPREADSHEET_ID, FakeGoogleSheets, Row
from tests.helpers import CONTACT_PHONE, add_request, sms

AUTH = "Bearer gs-token"
ROOT = f"/v4/spreadsheets/{SPREADSHEET_ID}"


def request(message: pb.Message, spreadsheet: str = SPREADSHEET_ID, **kw: Any) -> Any:
    return add_request("googlesheets", message, hostname="", user_info={"spreadsheet_id": spreadsheet}, **kw)


def sheet(crm: Harness) -> FakeGoogleSheets:
    assert isinstance(crm.fake, FakeGoogleSheets)
    return crm.fake


def cells(row: Row) -> list[Any]:
    return [next(iter(cell.values())) for cell in row.cells]


@pytest.fixture
async def crm(make_harness: Callable[..., Any]) -> AsyncIterator[Harness]:
    async with make_harness(FakeGoogleSheets(), AUTH) as harness:
        yield harness


async def test_create_inserts_one_tagged_row_under_the_header(crm: Harness) -> None:
    response = await crm.add(request(sms("m1", text="Hello")))

    lookup, write = crm.fake.requests
    assert (lookup.method, lookup.path) == ("GET", ROOT)
    assert (write.method, write.path) == ("POST", f"{ROOT}:batchUpdate")
    assert write.headers["authorization"] == AUTH
    kinds = [next(iter(r)) for r in write.body["requests"]]
    assert kinds == ["insertDimension", "updateCells", "createDeveloperMetadata"]
    fake = sheet(crm)
    header, row = fake.rows()
    assert cells(header) == list(HEADER)
    assert row is fake.row_of(response.log_id)
    subject, day, contact, count, body = cells(row)
    assert subject == "SMS conversation with Jane Doe - 2026-11-20"
    assert (day, contact, count) == ("2026-11-20", f"Jane Doe ({CONTACT_PHONE})", 1)
    assert "Hello" in body


async def test_an_append_reads_the_tagged_row_then_rewrites_it(crm: Harness) -> None:
    first = await crm.add(request(sms("m1", "2026-11-20T15:00:00Z", "one")))
    before = len(crm.fake.requests)
    await crm.add(request(sms("m2", "2026-11-20T15:05:00Z", "two")))

    read, append = crm.fake.requests[before:]
    row_filter = {"developerMetadataLookup": {"metadataId": int(first.log_id), "metadataKey": "messagelog"}}
    assert (read.method, read.path) == ("POST", f"{ROOT}/values:batchGetByDataFilter")
    assert read.body == {
        "dataFilters": [row_filter],
        "majorDimension": "ROWS",
        "valueRenderOption": "FORMULA",
    }
    assert (append.method, append.path) == ("POST", f"{ROOT}/values:batchUpdateByDataFilter")
    assert append.body["valueInputOption"] == "RAW"
    (data,) = append.body["data"]
    assert data["dataFilter"] == row_filter
    fake = sheet(crm)
    assert cells(fake.row_of(first.log_id))[3] == 2


async def test_a_persons_edit_of_the_log_cell_is_kept_and_later_messages_follow_it(crm: Harness) -> None:
    first = await crm.add(request(sms("m1", "2026-11-20T15:00:00Z", "one")))
    edited = "Called back; Jane agreed to Tuesday. (notes by Alice)"
    crm.fake.edit_record(first.log_id, edited)

    await crm.add(request(sms("m2", "2026-11-20T15:05:00Z", "two")))

    body = crm.fake.record_body(first.log_id)
    assert body.startswith(edited)
    assert "two" in body and "one" not in body.removeprefix(edited)


async def test_the_tag_carries_the_reference_and_a_lost_create_is_found_by_it(
    make_harness: Callable[..., Any],
) -> None:
    settle = str(SETTLE_SECONDS)
    async with make_harness(FakeGoogleSheets(), AUTH, MESSAGELOG_CREATE_SETTLE_SECONDS=settle) as crm:
        lost = request(sms("m1", text="first words"))
        retry = await lose_create_then_retry(crm, lost, "POST", rf"^{ROOT}:batchUpdate$")
        (log_id,) = crm.fake.record_ids()

    _, _, search, written = crm.fake.requests  # the sheet's lookup, the lost create, then these
    tag = sheet(crm).book.metadata[int(log_id)]
    assert (
        tag.value is not None and tag.value.startswith("(ref ") and tag.value in crm.fake.record_body(log_id)
    )
    assert (search.method, search.path) == ("POST", f"{ROOT}/developerMetadata:search")
    assert search.body == {
        "dataFilters": [
            {"developerMetadataLookup": {"metadataKey": "messagelog", "metadataValue": tag.value}}
        ]
    }
    assert written.path == f"{ROOT}/values:batchUpdateByDataFilter"
    assert retry.log_id == log_id and crm.fake.record_ids() == [log_id]
    assert crm.fake.record_body(log_id).count("first words") == 1


async def test_an_append_to_a_deleted_row_starts_the_day_again(crm: Harness) -> None:
    first = await crm.add(request(sms("m1", "2026-11-20T15:00:00Z", "one")))
    crm.fake.delete_record(first.log_id)

    second = await crm.add(request(sms("m2", "2026-11-20T15:05:00Z", "two")))

    assert second.log_id != first.log_id
    body = crm.fake.record_body(second.log_id)
    assert "one" in body and "two" in body


async def test_the_sheet_is_looked_up_once_per_spreadsheet(crm: Harness) -> None:
    await crm.add(request(sms("m1"), contact_id="42"))
    await crm.add(request(sms("m2"), contact_id="43"))

    assert len(crm.fake.calls("GET")) == 1
    assert len(crm.fake.record_ids()) == 2


async def test_rows_inserted_above_a_record_do_not_move_its_appends(crm: Harness) -> None:
    fake = sheet(crm)
    first = await crm.add(request(sms("m1", text="one")))
    someone_elses = Row([{"stringValue": "typed by a person"}])
    fake.rows().insert(1, someone_elses)

    await crm.add(request(sms("m2", "2026-11-20T16:00:00Z", "two")))

    assert cells(someone_elses) == ["typed by a person"]
    assert "two" in crm.fake.record_body(first.log_id)
    assert fake.rows().index(fake.row_of(first.log_id)) == 2


@pytest.mark.parametrize("name", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)"])
async def test_a_text_that_looks_like_a_formula_is_stored_as_typed_never_parsed(
    crm: Harness, name: str
) -> None:
    # RAW and stringValue are never parsed (sheets.v4.json): no apostrophe is needed, none is shown.
    add = request(sms("m1"))
    add.contact.name = name
    first = await crm.add(add)
    fake = sheet(crm)
    create = fake.calls("POST", r":batchUpdate$")[-1]
    contact_cell = create.body["requests"][1]["updateCells"]["rows"][0]["values"][2]
    assert contact_cell == {"userEnteredValue": {"stringValue": f"{name} ({CONTACT_PHONE})"}}

    add = request(sms("m2", "2026-11-20T16:00:00Z"))
    add.contact.name = name
    await crm.add(add)

    assert cells(fake.row_of(first.log_id))[2] == f"{name} ({CONTACT_PHONE})"
    append = crm.fake.requests[-1].body
    assert (
        append["valueInputOption"] == "RAW"
        and append["data"][0]["values"][0][2] == f"{name} ({CONTACT_PHONE})"
    )


async def test_a_spreadsheet_without_the_sheet_gets_it_with_a_header_once(
    make_harness: Callable[..., Any],
) -> None:
    fake = FakeGoogleSheets(with_sheet=False)
    async with make_harness(fake, AUTH) as crm:
        await crm.add(request(sms("m1"), contact_id="42"))
        await crm.add(request(sms("m2"), contact_id="43"))

    assert [r.method for r in fake.requests] == ["GET", "POST", "POST", "POST", "POST"]
    add_sheet = fake.requests[1].body["requests"][0]
    assert add_sheet == {"addSheet": {"properties": {"title": "Message Logs"}}}
    header, *rows = fake.rows()
    assert cells(header) == list(HEADER)
    assert len(rows) == 2


@pytest.mark.parametrize("spreadsheet", ["", "../../other", "a b"])
async def test_a_missing_or_malformed_spreadsheet_id_is_invalid_and_unsent(
    crm: Harness, spreadsheet: str
) -> None:
    status = await crm.add_error(request(sms("m1"), spreadsheet=spreadsheet))

    assert status.code == grpc.StatusCode.INVALID_ARGUMENT
    assert status.fields == {"user.platform_additional_info[spreadsheet_id]"}
    assert crm.fake.requests == []


async def test_user_hostname_plays_no_part(crm: Harness) -> None:
    response = await crm.add(
        add_request(
            "googlesheets",
            sms("m1"),
            hostname="evil.example.com",
            user_info={"spreadsheet_id": SPREADSHEET_ID},
        )
    )

    assert response.outcome == pb.LOG_OUTCOME_CREATED
    assert all(r.path.startswith(ROOT) for r in crm.fake.requests)


async def test_a_digest_over_the_cell_limit_keeps_its_start_and_says_it_was_cut(crm: Harness) -> None:
    for i in range(6):
        response = await crm.add(request(sms(f"m{i}", f"2026-11-20T15:0{i}:00Z", f"{i}" * 10_000)))

    body = crm.fake.record_body(response.log_id)
    assert len(body) == CELL_LIMIT
    assert body.startswith("SMS conversation with Jane Doe")
    assert body.endswith("cell limit]")


async def test_the_write_quota_is_rate_limited(make_harness: Callable[..., Any]) -> None:
    async with make_harness(FakeGoogleSheets(writes_per_minute=1), AUTH) as crm:
        await crm.add(request(sms("m1")))
        status = await crm.add_error(request(sms("m2", "2026-11-20T16:00:00Z")))

    assert status.code == grpc.StatusCode.UNAVAILABLE
    assert status.reason == "CRM_RATE_LIMITED"
