"""Issue 26, points 10, 14 and 18: ``duban import-status`` reads hostile files within limits.

Each hostile file is built here with ``zipfile`` (``hostile_files``) and given to a real ``duban``
process whose address space is limited (``RLIMIT_AS``, ``MEMORY``): a reader that keeps what it
reads fails with a MemoryError instead of swapping the machine, and one that spins is stopped by
the timeout. Whatever the file, the answer is one ``FILE:LINE: message`` per problem, exit 2,
nothing changed.
"""

from __future__ import annotations

import io
import os
import resource
import struct
import subprocess
import zipfile
from datetime import date
from pathlib import Path

import hostile_files as hostile
import pytest
from openpyxl import Workbook
from support import DUBAN

from orchestrator.admin import refs, xlsx_rows
from orchestrator.admin.status_file import MAX_FILE_BYTES, ImportProblems, read_status_file

MEMORY = 512 << 20  # what `duban import-status` may map: a small file needs under 200 MB
TIMEOUT = 60  # seconds: the dimension bomb kept the old reader busy for half an hour


def import_status(env, path: Path) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    return subprocess.run(
        [DUBAN, "--config", str(env.config_path), "import-status", str(path)],
        env=env.base_env(),
        cwd=env.root,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        preexec_fn=limit,
    )


def errors(result: subprocess.CompletedProcess) -> list[str]:
    """The lines on stderr of a refused import: exit 2, no traceback, nothing on stdout."""
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr[-2000:])
    assert result.stdout == ""
    return result.stderr.splitlines()


def nothing_imported(env) -> bool:
    return env.scalar("SELECT count(*) FROM event WHERE kind = 'import.status'") == 0


# -- point 10: spreadsheet bombs -------------------------------------------------------------------


BOMBS = {
    # 150 MB of <row/> in a file of about 230 KB: 1.75 GB and two minutes for the old reader
    "empty rows": (
        hostile.empty_rows,
        ":1: xl/worksheets/sheet1.xml expands to 150.0 MB from a file of",
    ),
    # 1.2 MB of <row/>: within the part's limit, so the rows read are counted, empty ones too
    "empty rows, counted": (
        lambda p: hostile.workbook(
            p, hostile.sheet_xml([hostile.HEADER, *hostile.repeated(b"<row/>", 1_200_000)])
        ),
        ":100002: more than 100,000 rows (empty ones count too): not read",
    ),
    # one shared string of 512 MB in a file of about 500 KB
    "string bomb": (
        lambda p: hostile.string_bomb(p, 512),
        ":1: xl/sharedStrings.xml expands to 512.0 MB from a file of",
    ),
    # 100,000 <c/> in one row: each a dict in openpyxl's row
    "wide row": (
        lambda p: hostile.wide_rows(p, 1, 100_000),
        ":2: more than 16,384 cells in one row (columns are A to XFD)",
    ),
}


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_spreadsheet_bomb_stops_at_the_first_limit_in_one_located_line(duban_env, tmp_path, bomb):
    make, message = BOMBS[bomb]
    path = make(tmp_path / "bomb.xlsx")
    (line,) = errors(import_status(duban_env, path))
    assert line.startswith(f"{path}{message}"), line
    assert nothing_imported(duban_env)


def test_cells_are_counted_as_they_are_read_empty_ones_too(tmp_path, monkeypatch):
    """The cell limit (2,000,000) at 10,000 here: eleven rows of 1,000 ``<c/>`` pass the part's
    size limit; the cells read are what stops the reading (the header has four)."""
    monkeypatch.setattr(xlsx_rows, "MAX_CELLS", 10_000)
    path = hostile.wide_rows(tmp_path / "cells.xlsx", 11, 1_000)
    with pytest.raises(ImportProblems) as caught:
        read_status_file(path)
    assert str(caught.value) == f"{path}:11: more than 10,000 cells (empty ones count too): not read"


@pytest.mark.parametrize("damage", ["deflate stream", "encrypted flag", "truncated"])
def test_a_damaged_archive_is_one_line(tmp_path, damage):
    path = hostile.workbook(
        tmp_path / "damaged.xlsx",
        hostile.sheet_xml(
            [hostile.HEADER, *[hostile.row(n, hostile.inline(f"B{n}", "已完成")) for n in range(2, 400)]]
        ),
    )
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("xl/worksheets/sheet1.xml")
    name_length, extra_length = struct.unpack_from("<HH", data, info.header_offset + 26)
    start = info.header_offset + 30 + name_length + extra_length
    if damage == "deflate stream":
        data[start : start + 16] = b"\xff" * 16
    elif damage == "encrypted flag":  # the sheet's entry is the last of the central directory
        data[data.rindex(b"PK\x01\x02") + 8] |= 1
    else:
        data = data[: start + 50] + data[-200:]
    path.write_bytes(bytes(data))
    with pytest.raises(ImportProblems) as caught:
        read_status_file(path)
    assert str(caught.value).startswith(f"{path}:1: not a readable XLSX workbook (")


def test_a_dimension_of_the_whole_sheet_is_not_believed(duban_env, tmp_path):
    """A 2 KB file declaring A1:XFD1048576 with a cell in the last row: the old reader padded a
    million rows to 16,384 cells each (half an hour); the dimension is never read now."""
    path = hostile.huge_dimension(tmp_path / "dimension.xlsx")
    assert path.stat().st_size < 4000
    lines = errors(import_status(duban_env, path))
    assert lines == [f"{path}:1048576: no ref (事项编号) and no task (任务编号): say which obligation"]


# -- point 10: CSV from a device, a FIFO, or too big ------------------------------------------------


def test_a_device_or_a_fifo_is_refused_at_once(duban_env, tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would wait forever
    for path in (Path("/dev/zero"), fifo, tmp_path):
        (line,) = errors(import_status(duban_env, path))
        assert line == f"{path}:1: not a regular file: give a CSV or XLSX file"
    assert nothing_imported(duban_env)


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(duban_env, tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as file:
        file.write("事项编号,状态\n".encode())
        file.truncate(MAX_FILE_BYTES + 1)  # sparse: a file of zeros that costs no disk
    (line,) = errors(import_status(duban_env, path))
    assert line == f"{path}:1: larger than 32 MB: split it, or leave out the rows without a state"


# -- point 14: numbers no cell should hold -------------------------------------------------------


def test_a_number_that_is_no_sane_value_is_one_located_line(duban_env, tmp_path):
    path = hostile.numbers(tmp_path / "numbers.xlsx", "1E300", "-1E300", "1E+20", "inf", "nan", "12")
    lines = errors(import_status(duban_env, path))
    too_large = "is too large for a cell (more than 2^53)"
    assert lines == [
        f"{path}:2: ref (事项编号): cell A2: the number 1E300 {too_large}",
        f"{path}:3: ref (事项编号): cell A3: the number -1E300 {too_large}",
        f"{path}:4: ref (事项编号): cell A4: the number 1E+20 {too_large}",
        f"{path}:5: ref (事项编号): cell A5: inf is no number a cell can use (infinite, or not a number)",
        f"{path}:6: ref (事项编号): cell A6: nan is no number a cell can use (infinite, or not a number)",
        f"{path}:7: no obligation #12 (`duban tasks` lists them)",  # a sane number goes on to the check
    ]


@pytest.mark.skipif(
    not hasattr(refs, "row_id"), reason="refs.py's bound on ids comes with branch i26-decisions"
)
def test_a_huge_ref_in_a_csv_is_what_refs_says_at_its_line(duban_env, tmp_path):
    """A CSV ref past any row id: refs.py's one line (no obligation …) at the row's line, exit 2."""
    path = tmp_path / "huge.csv"
    path.write_text("事项编号,状态,完成日期\n99999999999999999999,已完成,2026-06-01\n", encoding="utf-8")
    lines = errors(import_status(duban_env, path))
    assert lines == [f"{path}:2: no obligation #99999999999999999999 (`duban tasks` lists them)"]


def test_a_date_cell_that_is_no_date_is_one_located_line(duban_env, tmp_path):
    path = hostile.numbers(tmp_path / "dates.xlsx", "1E300", "-5", "3000000", column="C", style=1)
    lines = errors(import_status(duban_env, path))
    assert lines == [
        f"{path}:2: done_on (完成日期): cell C2: the number 1E300 is too large for a cell (more than 2^53)",
        f"{path}:3: done_on (完成日期): cell C3: the number -5 is formatted as a date but is no date",
        f"{path}:4: done_on (完成日期): cell C4: the number 3000000 is formatted as a date but is no date",
    ]


# -- point 18: what was silently taken or silently left -------------------------------------------


def test_an_unterminated_quoted_field_is_an_error_not_merged_into_the_evidence(duban_env, tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text(
        '事项编号,状态,完成日期,佐证材料\n1,已完成,2026-06-01,"县司法局〔2026〕3号\n2,已完成,2026-06-01,文号\n',
        encoding="utf-8",
    )
    lines = errors(import_status(duban_env, path))
    assert lines == [
        f'{path}:2: a quoted field opened on this line is never closed (read up to line 3): close its "'
    ]


def test_a_formula_without_a_saved_value_and_merged_state_cells_are_named_per_row(duban_env, tmp_path):
    rows = [
        hostile.HEADER,
        # B2: a formula Excel never calculated (written by a program): no value to read
        hostile.row(2, '<c r="A2"><v>1</v></c>', '<c r="B2" t="str"><f>IF(TRUE,"已完成")</f></c>'),
        # B3:B5 merged: Excel shows 已完成 on rows 4 and 5, but only B3 holds it
        hostile.row(3, '<c r="A3"><v>2</v></c>', hostile.inline("B3", "已完成")),
        hostile.row(4, '<c r="A4"><v>3</v></c>'),
        hostile.row(5, '<c r="A5"><v>4</v></c>'),
        # a formula with its saved value is read as that value
        hostile.row(6, '<c r="A6"><v>5</v></c>', '<c r="B6" t="str"><f>"已免除"</f><v>已免除</v></c>'),
        hostile.row(7, '<c r="A7"><v>6</v></c>', '<c r="B7" t="e"><v>#N/A</v></c>'),
    ]
    path = hostile.workbook(
        tmp_path / "formulas.xlsx",
        hostile.sheet_xml(rows, tail=b'<mergeCells count="1"><mergeCell ref="B3:B5"/></mergeCells>'),
    )
    lines = errors(import_status(duban_env, path))
    merged = "state (状态): cell B{} is in the merged cells B3:B5: only B3 holds a value (unmerge them and fill in each row)"
    assert lines == [
        f"{path}:2: state (状态): cell B2: a formula without a saved value (open and save the file in Excel, or type the value)",
        f"{path}:3: no obligation #2 (`duban tasks` lists them)",
        f"{path}:4: {merged.format(4)}",
        f"{path}:5: {merged.format(5)}",
        f"{path}:6: no obligation #5 (`duban tasks` lists them)",
        f"{path}:7: state (状态): cell B7: shows the error #N/A",
    ]


# -- what a real workbook gives (openpyxl writes as Excel does: shared strings, styles, dates) ---------


def test_a_workbook_saved_by_a_spreadsheet_program_reads_as_before(tmp_path):
    book = Workbook()
    sheet = book.active
    sheet.append(["事项编号", "状态", "完成日期", "佐证材料", "理由", "逾期"])
    sheet.append([12, "已完成", date(2026, 6, 5), "县司法局〔2026〕3号", None, 1e300])  # 逾期 is not read
    sheet.append(["#13", "已免除", None, None, "本单位无此项职能"])
    sheet.append([None, None, None, None])  # empty: skipped
    sheet.append([14.0, "", None, "=SUM(1,2)"])  # a formula with no saved value, in a row left as it is
    sheet.merge_cells("F2:F4")  # merged, but in a column that is not read
    out = io.BytesIO()
    book.save(out)
    path = tmp_path / "filled.xlsx"
    path.write_bytes(out.getvalue())
    rows = read_status_file(path).rows
    assert [(r.line, r.values, r.problem) for r in rows] == [
        (
            2,
            {
                "ref": "12",
                "state": "已完成",
                "done_on": "2026-06-05",
                "evidence": "县司法局〔2026〕3号",
                "reason": "",
            },
            None,
        ),
        (
            3,
            {"ref": "#13", "state": "已免除", "done_on": "", "evidence": "", "reason": "本单位无此项职能"},
            None,
        ),
        (5, {"ref": "14", "state": "", "done_on": "", "evidence": "", "reason": ""}, None),
    ]
