"""A fake Google Sheets API v4: one spreadsheet's sheets, rows, developer metadata and write quota.

Shapes follow the API's discovery document (sheets.v4.json in googleapis/google-api-python-client)
and developers.google.com/sheets/api/reference/rest: spreadsheets.get with sheet properties;
spreadsheets.batchUpdate (addSheet, insertDimension, updateCells, createDeveloperMetadata), applied
all or nothing, answering {"spreadsheetId", "replies"}; values.batchUpdateByDataFilter answering
totals; values.batchGetByDataFilter answering {"spreadsheetId", "valueRanges": [MatchedValueRange
{valueRange, dataFilters}]} with trailing empty cells left out; developerMetadata.search answering
{"matchedDeveloperMetadata": [{developerMetadata, dataFilters}]}. Empty lists and zero totals are
left out of replies, as proto3 JSON does.
Errors are {"error": {"code", "message", "status"}}. Writes beyond the per-minute quota get 429
RESOURCE_EXHAUSTED, without Retry-After. Developer metadata on a row moves and is deleted with it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.base import FakeCrm, FakeRequest, FakeResponse, Refusal

SPREADSHEET_ID = "1AbCdEfGhIjKlMnOp"
_ROOT = "/v4/spreadsheets"
_DISCOVERY = "sheets.v4.json (googleapis/google-api-python-client discovery_cache)"
_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}
# DeveloperMetadataLookup's fields (sheets.v4.json).
_LOOKUP_FIELDS = {
    "locationType",
    "metadataLocation",
    "locationMatchingStrategy",
    "metadataId",
    "metadataKey",
    "metadataValue",
    "visibility",
}
# ValueRenderOption (sheets.v4.json).
_RENDER_OPTIONS = {"FORMATTED_VALUE", "UNFORMATTED_VALUE", "FORMULA"}


def _error(status: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"error": {"code": status, "message": message, "status": _STATUS[status]}})


class _Invalid(Exception):
    pass


@dataclass(eq=False)  # a row is itself, whatever it holds
class Row:
    cells: list[dict[str, Any]] = field(default_factory=list)


@dataclass(eq=False)
class Tag:
    """Developer metadata on one row: it moves with the row and is deleted with it."""

    key: str
    value: str | None
    visibility: str
    sheet_id: int
    row: Row


@dataclass
class Book:
    sheets: dict[int, tuple[str, list[Row]]]
    metadata: dict[int, Tag] = field(default_factory=dict)
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
    documented_refusals = (
        # ValueInputOption is RAW or USER_ENTERED (INPUT_VALUE_OPTION_UNSPECIFIED "must not be used").
        Refusal(
            "POST",
            f"{_ROOT}/{SPREADSHEET_ID}/values:batchUpdateByDataFilter",
            {"valueInputOption": "PARSED", "data": []},
            400,
            ("error", "message"),
            source=f"{_DISCOVERY}: BatchUpdateValuesByDataFilterRequest.valueInputOption enum",
        ),
        # A Request names one of the documented request kinds; proto JSON refuses unknown names.
        Refusal(
            "POST",
            f"{_ROOT}/{SPREADSHEET_ID}:batchUpdate",
            {"requests": [{"insertRow": {"sheetId": 7}}]},
            400,
            ("error", "message"),
            source=f"{_DISCOVERY}: Request schema (insertDimension, not insertRow)",
        ),
        # ValueRenderOption is FORMATTED_VALUE, UNFORMATTED_VALUE or FORMULA.
        Refusal(
            "POST",
            f"{_ROOT}/{SPREADSHEET_ID}/values:batchGetByDataFilter",
            {"dataFilters": [], "valueRenderOption": "RAW"},
            400,
            ("error", "message"),
            source=f"{_DISCOVERY}: BatchGetValuesByDataFilterRequest.valueRenderOption enum",
        ),
    )

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
        self.route("POST", f"{root}/values:batchGetByDataFilter", self._get_by_filter)
        self.route("POST", f"{root}/developerMetadata:search", self._search_metadata)

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
            value = meta.get("metadataValue")
            if value is not None and not isinstance(value, str):
                raise _Invalid("metadataValue must be a string")
            book.next_id += 1
            row = book.sheets[sheet_id][1][start]
            book.metadata[book.next_id] = Tag(
                str(meta.get("metadataKey")), value, meta["visibility"], sheet_id, row
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
                for tag in self._matching(item.get("dataFilter")):
                    for values in item.get("values") or []:
                        tag.row.cells = [_value(_raw(v)) for v in values]
                        updated += 1
        except _Invalid as problem:
            return _error(400, str(problem))
        reply: dict[str, Any] = {"spreadsheetId": SPREADSHEET_ID}
        if updated:
            reply |= {"totalUpdatedRows": updated, "totalUpdatedSheets": 1}
        return FakeResponse(200, reply)

    def _get_by_filter(self, request: FakeRequest) -> FakeResponse:
        try:
            body = _keys(
                request.body,
                {"dataFilters", "majorDimension", "valueRenderOption", "dateTimeRenderOption"},
                "request",
            )
            if body.get("valueRenderOption", "FORMATTED_VALUE") not in _RENDER_OPTIONS:
                raise _Invalid("Invalid value at 'value_render_option'")
            if body.get("majorDimension", "ROWS") != "ROWS":
                raise _Invalid("This fake answers majorDimension ROWS only")
            matched = []
            for data_filter in body.get("dataFilters") or []:
                for tag in self._matching(data_filter):
                    title, rows = self.book.sheets[tag.sheet_id]
                    number = rows.index(tag.row) + 1
                    values = [next(iter(cell.values())) for cell in tag.row.cells]
                    while values and values[-1] == "":
                        values.pop()
                    value_range: dict[str, Any] = {
                        "range": f"'{title}'!A{number}:Z{number}",
                        "majorDimension": "ROWS",
                    }
                    if values:
                        value_range["values"] = [values]
                    matched.append({"valueRange": value_range, "dataFilters": [data_filter]})
        except _Invalid as problem:
            return _error(400, str(problem))
        reply: dict[str, Any] = {"spreadsheetId": SPREADSHEET_ID}
        if matched:
            reply["valueRanges"] = matched
        return FakeResponse(200, reply)

    def _search_metadata(self, request: FakeRequest) -> FakeResponse:
        try:
            body = _keys(request.body, {"dataFilters"}, "request")
            matched = []
            for data_filter in body.get("dataFilters") or []:
                for tag_id, tag in self.book.metadata.items():
                    if tag in self._matching(data_filter):
                        meta: dict[str, Any] = {
                            "metadataId": tag_id,
                            "metadataKey": tag.key,
                            "location": {
                                "locationType": "ROW",
                                "dimensionRange": self._row_range(tag),
                            },
                            "visibility": tag.visibility,
                        }
                        if tag.value is not None:
                            meta["metadataValue"] = tag.value
                        matched.append({"developerMetadata": meta, "dataFilters": [data_filter]})
        except _Invalid as problem:
            return _error(400, str(problem))
        return FakeResponse(200, {"matchedDeveloperMetadata": matched} if matched else {})

    def _matching(self, data_filter: Any) -> list[Tag]:
        """The tags a DataFilter's developerMetadataLookup selects: every field given must match."""
        lookup = _keys(
            _keys(data_filter, {"developerMetadataLookup"}, "dataFilter").get("developerMetadataLookup"),
            _LOOKUP_FIELDS,
            "developerMetadataLookup",
        )
        if not lookup:
            raise _Invalid("A developerMetadataLookup needs at least one criterion")
        return [
            tag
            for tag_id, tag in self.book.metadata.items()
            if lookup.get("metadataId", tag_id) == tag_id
            and lookup.get("metadataKey", tag.key) == tag.key
            and lookup.get("metadataValue", tag.value) == tag.value
        ]

    def _row_range(self, tag: Tag) -> dict[str, Any]:
        index = self.book.sheets[tag.sheet_id][1].index(tag.row)
        return {"sheetId": tag.sheet_id, "dimension": "ROWS", "startIndex": index, "endIndex": index + 1}

    def row_of(self, log_id: str) -> Row:
        return self.book.metadata[int(log_id)].row

    def rows(self, title: str = "Message Logs") -> list[Row]:
        return next(rows for t, rows in self.book.sheets.values() if t == title)

    def record_ids(self) -> list[str]:
        return [str(i) for i, tag in self.book.metadata.items() if tag.key == "messagelog"]

    def record_body(self, log_id: str) -> str:
        return str(self.row_of(log_id).cells[4]["stringValue"])

    def edit_record(self, log_id: str, text: str) -> None:
        self.row_of(log_id).cells[4]["stringValue"] = text

    def delete_record(self, log_id: str) -> None:
        tag = self.book.metadata.pop(int(log_id))
        self.book.sheets[tag.sheet_id][1].remove(tag.row)

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
