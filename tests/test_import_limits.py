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
        ":1: xl/worksheets/sheet1.xml 解压后为 150.0 MB，而文件只有",
    ),
    # 1.2 MB of <row/>: within the part's limit, so the rows read are counted, empty ones too
    "empty rows, counted": (
        lambda p: hostile.workbook(
            p, hostile.sheet_xml([hostile.HEADER, *hostile.repeated(b"<row/>", 1_200_000)])
        ),
        ":100002: 超过 100,000 行（空行也计算在内）：未读取",
    ),
    # one shared string of 512 MB in a file of about 500 KB
    "string bomb": (
        lambda p: hostile.string_bomb(p, 512),
        ":1: xl/sharedStrings.xml 解压后为 512.0 MB，而文件只有",
    ),
    # 100,000 <c/> in one row: each a dict in openpyxl's row
    "wide row": (
        lambda p: hostile.wide_rows(p, 1, 100_000),
        ":2: 一行超过 16,384 个单元格（列为 A 至 XFD）",
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
    assert str(caught.value) == f"{path}:11: 超过 10,000 个单元格（空单元格也计算在内）：未读取"


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
    assert str(caught.value).startswith(f"{path}:1: 不是可以读取的 XLSX 工作簿（")


def test_a_dimension_of_the_whole_sheet_is_not_believed(duban_env, tmp_path):
    """A 2 KB file declaring A1:XFD1048576 with a cell in the last row: the old reader padded a
    million rows to 16,384 cells each (half an hour); the dimension is never read now."""
    path = hostile.huge_dimension(tmp_path / "dimension.xlsx")
    assert path.stat().st_size < 4000
    lines = errors(import_status(duban_env, path))
    assert lines == [f"{path}:1048576: 列「事项编号」：未填写：请填写事项编号（或任务编号与责任单位）"]


# -- point 10: CSV from a device, a FIFO, or too big ------------------------------------------------


def test_a_device_or_a_fifo_is_refused_at_once(duban_env, tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)  # nobody writes to it: opening it for reading would wait forever
    for path in (Path("/dev/zero"), fifo, tmp_path):
        (line,) = errors(import_status(duban_env, path))
        assert line == f"{path}:1: 不是普通文件（是设备、管道或文件夹）：请给出一个 CSV 或 XLSX 文件"
    assert nothing_imported(duban_env)


def test_a_file_over_the_size_limit_is_refused_without_reading_it_all(duban_env, tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as file:
        file.write("事项编号,状态\n".encode())
        file.truncate(MAX_FILE_BYTES + 1)  # sparse: a file of zeros that costs no disk
    (line,) = errors(import_status(duban_env, path))
    assert line == f"{path}:1: 文件大于 32 MB：请拆分成几个文件，或删去未填写状态的行"


# -- point 14: numbers no cell should hold -------------------------------------------------------


def test_a_number_that_is_no_sane_value_is_one_located_line(duban_env, tmp_path):
    path = hostile.numbers(tmp_path / "numbers.xlsx", "1E300", "-1E300", "1E+20", "inf", "nan", "12")
    lines = errors(import_status(duban_env, path))
    too_large = "太大（超过 2^53）"
    assert lines == [
        f"{path}:2: 列「事项编号」：单元格 A2：数字 1E300 {too_large}",
        f"{path}:3: 列「事项编号」：单元格 A3：数字 -1E300 {too_large}",
        f"{path}:4: 列「事项编号」：单元格 A4：数字 1E+20 {too_large}",
        f"{path}:5: 列「事项编号」：单元格 A5：inf 不是可用的数字（无穷大或非数字）",
        f"{path}:6: 列「事项编号」：单元格 A6：nan 不是可用的数字（无穷大或非数字）",
        f"{path}:7: 列「事项编号」：没有编号为 #12 的事项",  # a sane number goes on to the check
    ]


@pytest.mark.skipif(
    not hasattr(refs, "row_id"), reason="refs.py's bound on ids comes with branch i26-decisions"
)
def test_a_huge_ref_in_a_csv_is_what_refs_says_at_its_line(duban_env, tmp_path):
    """A CSV ref past any row id: refs.py's one line (no obligation …) at the row's line, exit 2."""
    path = tmp_path / "huge.csv"
    path.write_text("事项编号,状态,完成日期\n99999999999999999999,已完成,2026-06-01\n", encoding="utf-8")
    lines = errors(import_status(duban_env, path))
    assert lines == [f"{path}:2: 列「事项编号」：没有编号为 #99999999999999999999 的事项"]


def test_a_date_cell_that_is_no_date_is_one_located_line(duban_env, tmp_path):
    path = hostile.numbers(tmp_path / "dates.xlsx", "1E300", "-5", "3000000", column="C", style=1)
    lines = errors(import_status(duban_env, path))
    assert lines == [
        f"{path}:2: 列「完成日期」：单元格 C2：数字 1E300 太大（超过 2^53）",
        f"{path}:3: 列「完成日期」：单元格 C3：设为日期格式，但数字 -5 不是有效日期",
        f"{path}:4: 列「完成日期」：单元格 C4：设为日期格式，但数字 3000000 不是有效日期",
    ]


# -- point 18: what was silently taken or silently left -------------------------------------------


def test_an_unterminated_quoted_field_is_an_error_not_merged_into_the_evidence(duban_env, tmp_path):
    path = tmp_path / "quote.csv"
    path.write_text(
        '事项编号,状态,完成日期,佐证材料\n1,已完成,2026-06-01,"县司法局〔2026〕3号\n2,已完成,2026-06-01,文号\n',
        encoding="utf-8",
    )
    lines = errors(import_status(duban_env, path))
    assert lines == [f'{path}:2: 本行有一个以引号开始的单元格没有结束（一直读到第 3 行）：请补上结束的引号 "']


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
    merged = "列「状态」：单元格 B{} 在合并单元格 B3:B5 中，只有 B3 有值（请取消合并，逐行填写）"
    assert lines == [
        f"{path}:2: 列「状态」：单元格 B2：是公式，但文件中没有它的计算结果（请在 Excel 或 WPS 中打开并保存，或直接填写值）",
        f"{path}:3: 列「事项编号」：没有编号为 #2 的事项",
        f"{path}:4: {merged.format(4)}",
        f"{path}:5: {merged.format(5)}",
        f"{path}:6: 列「事项编号」：没有编号为 #5 的事项",
        f"{path}:7: 列「状态」：单元格 B7：显示错误值 #N/A",
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
