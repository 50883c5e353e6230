"""Google Sheets: each record is one row of the "Message Logs" sheet in the user's spreadsheet (API v4).

- Host: sheets.googleapis.com, fixed; user.hostname is not used. The spreadsheet comes in
  user.platform_additional_info["spreadsheet_id"] (the id in the spreadsheet's URL).
- Auth: crm-authorization is sent as the Authorization header (an OAuth 2.0 "Bearer <token>" with
  a Sheets scope).
- Row: subject, local date, contact, message count, body (plain text). Cells are written as values,
  never parsed (stringValue, valueInputOption RAW), and a text cell starting with = + - @ also gets
  a leading ' so it cannot become a formula once the sheet is exported or retyped. A body over the
  50,000-character cell limit keeps its start and says it was cut.
- Record id: the id of developer metadata tagging the row. The tag follows its row when rows are
  sorted, inserted or deleted and goes away with it, so an append can never land in another
  record's row (the old product's "row count + 1" id did).
- additional_submission: none.
- CRM calls: create is one spreadsheets:batchUpdate that inserts a row under the header, fills it
  and tags it (so the newest record is on top); append is one values:batchUpdateByDataFilter
  rewriting the tagged row, and no row matching means the record was deleted. The sheet's id is
  looked up once an hour per spreadsheet; a spreadsheet without the sheet gets it, with a header
  row, on its first create (two more writes, once).
"""

from __future__ import annotations

import re
from typing import Any

from service.adapters.base import (
    LOOKUP_TTL_SECONDS,
    AccountLookup,
    CrmCall,
    HttpCrmAdapter,
    TtlCache,
    Written,
    field_at,
    record_id,
)
from service.errors import CrmBadResponse, CrmRecordNotFound, FieldViolation, InvalidRequest
from service.render import BodyFormat, RenderedRecord

SHEET_TITLE = "Message Logs"
HEADER = ("Subject", "Date", "Contact", "Messages", "Log")
CELL_LIMIT = 50_000
_TRUNCATED = "\n[cut: the rest is over the sheet's 50,000-character cell limit]"
_SPREADSHEET_KEY = "spreadsheet_id"
_SPREADSHEET_FIELD = f"user.platform_additional_info[{_SPREADSHEET_KEY}]"
_SPREADSHEET_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")
_METADATA_KEY = "messagelog"
# Tab and carriage return too: spreadsheet apps skip them and read the formula that follows.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class GoogleSheetsAdapter(HttpCrmAdapter):
    name = "googlesheets"
    body_format = BodyFormat.TEXT
    host_patterns = (r"sheets\.googleapis\.com",)
    default_base_url = "https://sheets.googleapis.com/v4/spreadsheets"
    # The spreadsheet the credential can open (record ids repeat across spreadsheets).
    identity = AccountLookup("", account_at=("spreadsheetId",), params={"fields": "spreadsheetId"})

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
        requests = [
            {"insertDimension": {"range": row, "inheritFromBefore": False}},
            _fill(sheet_id, 1, _cells(call, record)),
            {
                "createDeveloperMetadata": {
                    "developerMetadata": {
                        "metadataKey": _METADATA_KEY,
                        "location": {"dimensionRange": row},
                        "visibility": "DOCUMENT",
                    }
                }
            },
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
        if not log_id.isdigit():
            raise InvalidRequest([FieldViolation("log_id", "must be a messagelog row id (digits only)")])
        body = await self.request(
            call,
            "POST",
            f"/{_spreadsheet(call)}/values:batchUpdateByDataFilter",
            json={
                "valueInputOption": "RAW",
                "data": [
                    {
                        "dataFilter": {
                            "developerMetadataLookup": {
                                "metadataId": int(log_id),
                                "metadataKey": _METADATA_KEY,
                            }
                        },
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


def _cells(call: CrmCall, record: RenderedRecord) -> list[str | int]:
    contact = call.contact
    label = f"{contact.name} ({contact.phone_number})" if contact.name else contact.phone_number
    body = _inert(record.body)
    if len(body) > CELL_LIMIT:
        body = body[: CELL_LIMIT - len(_TRUNCATED)] + _TRUNCATED
    return [_inert(record.subject), record.local_date.isoformat(), _inert(label), record.message_count, body]


def _inert(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


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
