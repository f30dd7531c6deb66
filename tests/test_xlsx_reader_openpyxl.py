"""The streaming XLSX reader (``admin.xlsx_rows``, written for its bounds) against openpyxl's own
reading of the same workbooks: whatever a spreadsheet program writes — shared and inline strings,
integers, decimals, dates and date-times in date formats, empty cells and rows, wide rows, the
1904 calendar — reads to the same values, cell by cell."""

from __future__ import annotations

import io
import math
from datetime import date, datetime

import openpyxl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.admin.xlsx_rows import BadCell, read_sheet

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=40,
).filter(lambda t: not t.startswith("="))  # (openpyxl writes those as formulas, without a saved value)
NUMBER = st.one_of(
    st.integers(min_value=-(2**52), max_value=2**52),
    st.floats(min_value=-1e12, max_value=1e12, allow_nan=False, allow_infinity=False).filter(
        lambda f: f == 0 or abs(f) > 1e-9
    ),
)
DAY = st.dates(
    min_value=date(1904, 1, 1), max_value=date(2099, 12, 31)
)  # (Excel has no day before its epoch)
MOMENT = st.datetimes(min_value=datetime(1904, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.replace(microsecond=0)
)
CELL = st.one_of(st.none(), TEXT, NUMBER, DAY, MOMENT)
ROWS = st.lists(st.lists(CELL, max_size=12), max_size=25)


def _workbook(rows: list[list[object]], date1904: bool) -> bytes:
    book = openpyxl.Workbook()
    if date1904:
        book.epoch = openpyxl.utils.datetime.CALENDAR_MAC_1904
    sheet = book.active
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row, start=1):
            if value is not None and value != "":
                sheet.cell(row=r, column=c, value=value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _as_openpyxl_reads(value: object) -> str | None:
    """A cell as openpyxl hands it back, in the reader's words (text; dates as YYYY-MM-DD)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        if math.isfinite(value) and value == int(value) and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    return str(value)


def _openpyxl_cells(data: bytes) -> dict[tuple[int, int], str]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    cells = {}
    for r, row in enumerate(book.active.iter_rows(values_only=True), start=1):
        for c, value in enumerate(row):
            seen = _as_openpyxl_reads(value)
            if seen not in (None, ""):
                cells[(r, c)] = seen
    book.close()
    return cells


def _our_cells(data: bytes) -> dict[tuple[int, int], str]:
    cells = {}
    for r, row in read_sheet(data, max_rows=100_000).rows:
        for c, value in row.items():
            assert not isinstance(value, BadCell), value
            if value != "":
                cells[(r, c)] = value
    return cells


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=ROWS, date1904=st.booleans())
def test_the_streaming_reader_reads_what_openpyxl_reads(rows, date1904):
    data = _workbook(rows, date1904)
    ours, theirs = _our_cells(data), _openpyxl_cells(data)
    assert ours.keys() == theirs.keys()
    for key, value in theirs.items():
        mine = ours[key]
        if mine != value:  # a decimal may be spelt differently (1e-05 / 0.00001): the same number
            assert float(mine) == float(value), (key, mine, value)
