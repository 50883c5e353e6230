"""Google Sheets: each record is one row of the "Message Logs" sheet in the user's spreadsheet (API v4).

- Host: sheets.googleapis.com, fixed; user.hostname is not used. The spreadsheet comes in
  user.platform_additional_info["spreadsheet_id"] (the id in the spreadsheet's URL).
- Auth: crm-authorization is sent as the Authorization header (an OAuth 2.0 "Bearer <token>" with
  a Sheets scope).
- Account: the spreadsheet, as the credential can open it: GET /{spreadsheetId}?fields=spreadsheetId
  (record ids repeat across spreadsheets, so the spreadsheet keys everything). This proves the
  credential can read the spreadsheet, not that it can edit it: spreadsheets.get also takes the
  read-only scopes and a viewer's token. The Sheets API has no cheap call that proves edit
  access without changing something (Drive's capabilities.canEdit needs a Drive scope); a
  credential that cannot edit is refused (403) at its first write.
- Row: subject, local date, contact, message count, body (plain text). Cells are written as values,
  never parsed: `stringValue` cells and valueInputOption RAW ("The values the user has entered will
  not be parsed and will be stored as-is", sheets.v4.json), so a text starting with = + - @ stays
  text, as typed, with no apostrophe shown. A body over the 50,000-character cell limit keeps its
  start and says it was cut.
- Record id: the id of developer metadata tagging the row. The tag follows its row when rows are
  sorted, inserted or deleted and goes away with it, so an append can never land in another
  record's row (the old product's "row count + 1" id did). Its value is the digest's reference
  marker, so a record can be found by it.
- additional_submission: none.
- CRM calls: create is one spreadsheets:batchUpdate that inserts a row under the header, fills it
  and tags it (so the newest record is on top). An append reads the tagged row's values,
  values:batchGetByDataFilter (so a person's edit of the Log cell is found and kept), then writes
  it with one values:batchUpdateByDataFilter: two calls (Sheets has no conditional write); no row
  matching means the record was deleted. The sheet's id is looked up once an hour per
  spreadsheet; a spreadsheet without the sheet gets it, with a header row, on its first create
  (two more writes, once).
- A create whose reply was lost is found, not made twice: developerMetadata:search for the
  messagelog tag whose value is the digest's reference marker (one call).
- Sources: sheets.v4.json in googleapis/google-api-python-client (every method, request and reply
  field used). Not verified: the developer-metadata size cap (one entry per row).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from service.adapters.base import (
    LOOKUP_TTL_SECONDS,
    AccountLookup,
    CrmCall,
    CurrentRecord,
    ErrorFields,
    HttpCrmAdapter,
    TtlCache,
    Written,
    field_at,
    record_id,
)
from service.errors import CrmBadResponse, CrmRecordNotFound, FieldViolation, InvalidRequest
from service.render import BodyFormat, RenderedRecord, ref_marker

SHEET_TITLE = "Message Logs"
HEADER = ("Subject", "Date", "Contact", "Messages", "Log")
CELL_LIMIT = 50_000
_TRUNCATED = "\n[cut: the rest is over the sheet's 50,000-character cell limit]"
_SPREADSHEET_KEY = "spreadsheet_id"
_SPREADSHEET_FIELD = f"user.platform_additional_info[{_SPREADSHEET_KEY}]"
_SPREADSHEET_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_METADATA_KEY = "messagelog"
_BODY_COLUMN = HEADER.index("Log")


class GoogleSheetsAdapter(HttpCrmAdapter):
    name = "googlesheets"
    error_fields = ErrorFields(code_at=("error", "status"), message_at=("error", "message"))
    body_format = BodyFormat.TEXT
    host_patterns = (r"sheets\.googleapis\.com",)
    default_base_url = "https://sheets.googleapis.com/v4/spreadsheets"
    # The spreadsheet the credential can open (record ids repeat across spreadsheets).
    identity = AccountLookup("", account_at=("spreadsheetId",), params={"fields": "spreadsheetId"})
    reads_records = True
    finds_created = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._sheet_ids: TtlCache[str, int] = TtlCache(LOOKUP_TTL_SECONDS)

    def identity_path(self, call: CrmCall) -> str:
        return f"/{_spreadsheet(call)}"

    def validate(self, call: CrmCall) -> None:
        super().validate(call)
        _spreadsheet(call)

    async def create(self, call: CrmCall, record: RenderedRecord) -> Written:
        sheet_id = await self._sheet_id(call)
        row = {"sheetId": sheet_id, "dimension": "ROWS", "startIndex": 1, "endIndex": 2}
        tag: dict[str, Any] = {
            "metadataKey": _METADATA_KEY,
            "location": {"dimensionRange": row},
            "visibility": "DOCUMENT",
        }
        if record.ref:
            tag["metadataValue"] = ref_marker(record.ref)
        requests = [
            {"insertDimension": {"range": row, "inheritFromBefore": False}},
            _fill(sheet_id, 1, _cells(call, record)),
            {"createDeveloperMetadata": {"developerMetadata": tag}},
        ]
        body = await self.request(
            call,
            "POST",
            f"/{_spreadsheet(call)}:batchUpdate",
            json={"requests": requests},
            operation="insert_row",
        )
        return Written(
            record_id(body, "replies", 2, "createDeveloperMetadata", "developerMetadata", "metadataId")
        )

    async def update(self, call: CrmCall, log_id: str, record: RenderedRecord) -> Written:
        body = await self.request(
            call,
            "POST",
            f"/{_spreadsheet(call)}/values:batchUpdateByDataFilter",
            json={
                "valueInputOption": "RAW",
                "data": [
                    {
                        "dataFilter": _row_filter(log_id),
                        "majorDimension": "ROWS",
                        "values": [_cells(call, record)],
                    }
                ],
            },
            operation="update_row",
            # Writing the same cells again is harmless, though the API spells it POST.
            repeatable=True,
        )
        if not isinstance(body, dict) or not body.get("totalUpdatedRows"):
            raise CrmRecordNotFound("googlesheets has no row tagged with this record id", http_status=200)
        return Written(log_id)

    async def read_record(self, call: CrmCall, log_id: str) -> CurrentRecord:
        body = await self.request(
            call,
            "POST",
            f"/{_spreadsheet(call)}/values:batchGetByDataFilter",
            json={
                "dataFilters": [_row_filter(log_id)],
                "majorDimension": "ROWS",
                # A person's text as they typed it, a formula included, not its computed value.
                "valueRenderOption": "FORMULA",
            },
            operation="read_row",
            repeatable=True,
        )
        matched = body.get("valueRanges") if isinstance(body, dict) else None
        if not matched:
            raise CrmRecordNotFound("googlesheets has no row tagged with this record id", http_status=200)
        rows = field_at(matched, 0, "valueRange").get("values") or [[]]
        row = rows[0] if isinstance(rows, list) and isinstance(rows[0], list) else []
        # Trailing empty cells are left out of the reply: an emptied Log cell is not there at all.
        return CurrentRecord(str(row[_BODY_COLUMN]) if len(row) > _BODY_COLUMN else "")

    async def find_created(self, call: CrmCall, marker: str, since: datetime) -> str | None:
        # The tag's value is the marker (see create); `since` is not needed, a marker is unique.
        body = await self.request(
            call,
            "POST",
            f"/{_spreadsheet(call)}/developerMetadata:search",
            json={
                "dataFilters": [
                    {"developerMetadataLookup": {"metadataKey": _METADATA_KEY, "metadataValue": marker}}
                ]
            },
            operation="find_row",
            repeatable=True,
        )
        matched = body.get("matchedDeveloperMetadata") if isinstance(body, dict) else None
        if not matched:
            return None
        return record_id(matched[0], "developerMetadata", "metadataId")

    async def _sheet_id(self, call: CrmCall) -> int:
        spreadsheet = _spreadsheet(call)
        sheet_id = self._sheet_ids.get(spreadsheet)
        if sheet_id is None:
            body = await self.request(
                call,
                "GET",
                f"/{spreadsheet}",
                params={"fields": "sheets.properties(sheetId,title)"},
                operation="get_sheets",
            )
            sheets = field_at(body, "sheets")
            found = [
                props.get("sheetId")
                for props in (
                    s.get("properties")
                    for s in (sheets if isinstance(sheets, list) else [])
                    if isinstance(s, dict)
                )
                if isinstance(props, dict) and props.get("title") == SHEET_TITLE
            ]
            sheet_id = _sheet_number(found[0]) if found else await self._add_sheet(call, spreadsheet)
            self._sheet_ids.put(spreadsheet, sheet_id)
        return sheet_id

    async def _add_sheet(self, call: CrmCall, spreadsheet: str) -> int:
        body = await self.request(
            call,
            "POST",
            f"/{spreadsheet}:batchUpdate",
            json={"requests": [{"addSheet": {"properties": {"title": SHEET_TITLE}}}]},
            operation="add_sheet",
        )
        sheet_id = _sheet_number(field_at(body, "replies", 0, "addSheet", "properties", "sheetId"))
        await self.request(
            call,
            "POST",
            f"/{spreadsheet}:batchUpdate",
            json={"requests": [_fill(sheet_id, 0, list(HEADER))]},
            operation="write_header",
            repeatable=True,
        )
        return sheet_id


def _spreadsheet(call: CrmCall) -> str:
    spreadsheet = call.user.platform_additional_info.get(_SPREADSHEET_KEY, "")
    if not _SPREADSHEET_ID.fullmatch(spreadsheet):
        raise InvalidRequest([FieldViolation(_SPREADSHEET_FIELD, "must be a Google spreadsheet id")])
    return spreadsheet


def _sheet_number(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CrmBadResponse("the googlesheets reply's sheetId is not a number")
    return value


def _row_filter(log_id: str) -> dict[str, Any]:
    """The data filter selecting the row our developer metadata `log_id` tags."""
    if not log_id.isascii() or not log_id.isdigit():
        raise InvalidRequest([FieldViolation("log_id", "must be a messagelog row id (digits only)")])
    return {"developerMetadataLookup": {"metadataId": int(log_id), "metadataKey": _METADATA_KEY}}


def _cells(call: CrmCall, record: RenderedRecord) -> list[str | int]:
    contact = call.contact
    label = f"{contact.name} ({contact.phone_number})" if contact.name else contact.phone_number
    body = record.body
    if len(body) > CELL_LIMIT:
        body = body[: CELL_LIMIT - len(_TRUNCATED)] + _TRUNCATED
    return [record.subject, record.local_date.isoformat(), label, record.message_count, body]


def _fill(sheet_id: int, row_index: int, cells: list[str | int]) -> dict[str, Any]:
    values = [
        {"userEnteredValue": {"numberValue": c} if isinstance(c, int) else {"stringValue": c}} for c in cells
    ]
    return {
        "updateCells": {
            "start": {"sheetId": sheet_id, "rowIndex": row_index, "columnIndex": 0},
            "rows": [{"values": values}],
            "fields": "userEnteredValue",
        }
    }
