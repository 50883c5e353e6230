"""A fake Google Sheets API v4: one spreadsheet's sheets, rows, developer metadata and write quota.

Shapes follow developers.google.com/sheets/api/reference/rest: spreadsheets.get with sheet
properties; spreadsheets.batchUpdate (addSheet, insertDimension, updateCells,
createDeveloperMetadata), applied all or nothing, answering {"spreadsheetId", "replies"};
values.batchUpdateByDataFilter answering totals that are left out when zero, as proto3 JSON does.
Errors are {"error": {"code", "message", "status"}}. Writes beyond the per-minute quota get 429
RESOURCE_EXHAUSTED, without Retry-After. Developer metadata on a row moves and is deleted with it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse

SPREADSHEET_ID = "1AbCdEfGhIjKlMnOp"
_ROOT = "/v4/spreadsheets"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}


def _error(status: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"error": {"code": status, "message": message, "status": _STATUS[status]}})


class _Invalid(Exception):
    pass


@dataclass
class Row:
    cells: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Book:
    sheets: dict[int, tuple[str, list[Row]]]
    # metadataId -> (metadataKey, sheetId, the tagged row)
    metadata: dict[int, tuple[str, int, Row]] = field(default_factory=dict)
    next_id: int = 100


def _keys(obj: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict) or not set(obj) <= allowed:
        raise _Invalid(f"Invalid JSON payload received. Unknown name in {where}")
    return obj


def _rows_range(obj: Any, book: Book) -> tuple[int, int, int]:
    rng = _keys(obj, {"sheetId", "dimension", "startIndex", "endIndex"}, "range")
    if rng.get("dimension") != "ROWS" or rng.get("sheetId") not in book.sheets:
        raise _Invalid("Invalid dimensionRange")
    start, end = rng.get("startIndex"), rng.get("endIndex")
    if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end):
        raise _Invalid("Invalid dimensionRange indexes")
    return rng["sheetId"], start, end


class FakeGoogleSheets(FakeCrm):
    name = "googlesheets"

    def __init__(
        self, *, token: str = "gs-token", with_sheet: bool = True, writes_per_minute: int = 60
    ) -> None:
        super().__init__()
        self.token = token
        header = Row([{"stringValue": h} for h in ("Subject", "Date", "Contact", "Messages", "Log")])
        sheets: dict[int, tuple[str, list[Row]]] = {0: ("Sheet1", [])}
        if with_sheet:
            sheets[7] = ("Message Logs", [header])
        self.book = Book(sheets)
        self.writes_per_minute = writes_per_minute
        self._writes: list[float] = []
        root = f"{_ROOT}/{SPREADSHEET_ID}"
        self.route("GET", root, self._get)
        self.route("POST", f"{root}:batchUpdate", self._batch_update)
        self.route("POST", f"{root}/values:batchUpdateByDataFilter", self._update_by_filter)

    def is_identity_lookup(self, request: FakeRequest) -> bool:
        # The spreadsheet asked for only its id: the adapter's identity lookup.
        return request.method == "GET" and request.query.get("fields") == "spreadsheetId"

    def authorize(self, request: FakeRequest) -> FakeResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "Request had invalid authentication credentials.")
        if request.method == "POST":
            now = time.monotonic()
            self._writes = [t for t in self._writes if now - t < 60] + [now]
            if len(self._writes) > self.writes_per_minute:
                return _error(429, "Quota exceeded for quota metric 'Write requests'.")
        return None

    def not_found(self, request: FakeRequest) -> FakeResponse:
        return _error(404, "Requested entity was not found.")

    def _get(self, request: FakeRequest) -> FakeResponse:
        sheets = [{"properties": {"sheetId": i, "title": t}} for i, (t, _) in self.book.sheets.items()]
        whole = {"spreadsheetId": SPREADSHEET_ID, "sheets": sheets}
        # `fields` is a field mask: only the named top-level fields are answered.
        wanted = [f.split(".", 1)[0] for f in request.query.get("fields", "").split(",") if f]
        return FakeResponse(200, {k: v for k, v in whole.items() if not wanted or k in wanted})

    def _batch_update(self, request: FakeRequest) -> FakeResponse:
        book = copy.deepcopy(self.book)
        try:
            body = _keys(request.body, {"requests"}, "request")
            replies = [self._apply(book, item) for item in body.get("requests") or []]
        except _Invalid as problem:
            return _error(400, str(problem))
        self.book = book
        return FakeResponse(200, {"spreadsheetId": SPREADSHEET_ID, "replies": replies})

    def _apply(self, book: Book, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or len(item) != 1:
            raise _Invalid("Each request must set exactly one kind")
        ((kind, spec),) = item.items()
        if kind == "addSheet":
            title = _keys(_keys(spec, {"properties"}, kind).get("properties"), {"title"}, kind).get("title")
            if not isinstance(title, str) or title in {t for t, _ in book.sheets.values()}:
                raise _Invalid(f"A sheet with the name {title!r} already exists.")
            book.next_id += 1
            book.sheets[book.next_id] = (title, [])
            return {"addSheet": {"properties": {"sheetId": book.next_id, "title": title}}}
        if kind == "insertDimension":
            spec = _keys(spec, {"range", "inheritFromBefore"}, kind)
            sheet_id, start, end = _rows_range(spec.get("range"), book)
            rows = book.sheets[sheet_id][1]
            rows[start:start] = [Row() for _ in range(end - start)]
            return {}
        if kind == "updateCells":
            spec = _keys(spec, {"start", "rows", "fields"}, kind)
            start = _keys(spec.get("start"), {"sheetId", "rowIndex", "columnIndex"}, "start")
            if spec.get("fields") != "userEnteredValue" or start.get("sheetId") not in book.sheets:
                raise _Invalid("updateCells needs fields userEnteredValue and a known sheetId")
            rows = book.sheets[start["sheetId"]][1]
            for offset, row in enumerate(spec.get("rows") or []):
                values = _keys(row, {"values"}, "rows").get("values") or []
                cells = [
                    _value(_keys(v, {"userEnteredValue"}, "values").get("userEnteredValue")) for v in values
                ]
                index = start.get("rowIndex", 0) + offset
                while len(rows) <= index:
                    rows.append(Row())
                rows[index].cells = cells
            return {}
        if kind == "createDeveloperMetadata":
            meta = _keys(
                _keys(spec, {"developerMetadata"}, kind).get("developerMetadata"),
                {"metadataKey", "metadataValue", "location", "visibility"},
                kind,
            )
            location = _keys(meta.get("location"), {"dimensionRange"}, "location")
            sheet_id, start, end = _rows_range(location.get("dimensionRange"), book)
            if end - start != 1 or meta.get("visibility") not in ("DOCUMENT", "PROJECT"):
                raise _Invalid("This fake tags one row with DOCUMENT or PROJECT visibility")
            book.next_id += 1
            book.metadata[book.next_id] = (
                str(meta.get("metadataKey")),
                sheet_id,
                book.sheets[sheet_id][1][start],
            )
            return {"createDeveloperMetadata": {"developerMetadata": {"metadataId": book.next_id, **meta}}}
        raise _Invalid(f"Invalid JSON payload received. Unknown name {kind!r}")

    def _update_by_filter(self, request: FakeRequest) -> FakeResponse:
        try:
            body = _keys(request.body, {"valueInputOption", "data"}, "request")
            if body.get("valueInputOption") not in ("RAW", "USER_ENTERED"):
                raise _Invalid("valueInputOption is required")
            updated = 0
            for item in body.get("data") or []:
                item = _keys(item, {"dataFilter", "majorDimension", "values"}, "data")
                lookup = _keys(
                    _keys(item.get("dataFilter"), {"developerMetadataLookup"}, "dataFilter").get(
                        "developerMetadataLookup"
                    ),
                    {"metadataId", "metadataKey"},
                    "developerMetadataLookup",
                )
                tagged = self.book.metadata.get(lookup.get("metadataId", -1))
                if tagged is None or tagged[0] != lookup.get("metadataKey", tagged[0]):
                    continue
                for values in item.get("values") or []:
                    tagged[2].cells = [_value(_raw(v)) for v in values]
                    updated += 1
        except _Invalid as problem:
            return _error(400, str(problem))
        reply: dict[str, Any] = {"spreadsheetId": SPREADSHEET_ID}
        if updated:
            reply |= {"totalUpdatedRows": updated, "totalUpdatedSheets": 1}
        return FakeResponse(200, reply)

    def row_of(self, log_id: str) -> Row:
        return self.book.metadata[int(log_id)][2]

    def rows(self, title: str = "Message Logs") -> list[Row]:
        return next(rows for t, rows in self.book.sheets.values() if t == title)

    def record_ids(self) -> list[str]:
        return [str(i) for i, (key, _, _) in self.book.metadata.items() if key == "messagelog"]

    def record_body(self, log_id: str) -> str:
        return str(self.row_of(log_id).cells[4]["stringValue"])

    def edit_record(self, log_id: str, text: str) -> None:
        self.row_of(log_id).cells[4]["stringValue"] = text

    def delete_record(self, log_id: str) -> None:
        _, sheet_id, row = self.book.metadata.pop(int(log_id))
        self.book.sheets[sheet_id][1].remove(row)

    def write_paths(self) -> str:
        return rf"^{_ROOT}/[^/]+(:batchUpdate|/values:batchUpdateByDataFilter)$"


def _value(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"stringValue", "numberValue"}:
        raise _Invalid("A cell must be one stringValue or numberValue")
    return value


def _raw(value: Any) -> dict[str, Any]:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Invalid("A RAW value must be a string or a number")
    return {"stringValue": value} if isinstance(value, str) else {"numberValue": value}
