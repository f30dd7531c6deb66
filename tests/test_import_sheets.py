"""Issue 27, point 9: ``duban import-status`` as offices fill spreadsheets.

The county starts duban on 2 December 2026 (``test_late_start``'s run: the real engine, a real
SQLite file, the office's summary delivered into a maildir). Its attachment is read back with
openpyxl as WPS or Excel would show it, "filled in" by a clerk with openpyxl — dates as date cells,
date-time cells and the texts people type — and imported by a real ``duban`` process, in batches,
twice and more. Every message is one zh-CN line ``FILE:LINE: 列「…」：…``, naming the column as the
sheet's header does.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlmodel import Session, select

from orchestrator.store.db import make_engine, upgrade
from orchestrator.store.models import Event, Obligation
from tests.engine_support import local
from tests.test_late_start import _config, duban, inbox, run_late_start, summary_of

NOW = "2026-12-04T10:00:00+08:00"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The database and the office's summary after the late start, made once; each test copies them."""
    folder = tmp_path_factory.mktemp("sheets")
    engine = make_engine(f"sqlite:///{folder / 'duban.db'}", create_dir=True)
    upgrade(engine)
    run_late_start(engine, folder / "mail")
    engine.dispose()
    _path, message = summary_of(inbox(folder / "mail"))
    attachment = next(p for p in message.iter_attachments() if p.get_filename().endswith(".xlsx"))
    return folder / "duban.db", attachment.get_filename(), attachment.get_content()


@pytest.fixture
def site(prepared, tmp_path: Path):
    database, name, data = prepared
    shutil.copy(database, tmp_path / "duban.db")
    config = _config(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'duban.db'}")
    (tmp_path / name).write_bytes(data)
    yield config, engine, tmp_path / name
    engine.dispose()


def run(config: Path, path: Path) -> subprocess.CompletedProcess:
    result = duban(config, "import-status", str(path), now=NOW)
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    return result


def events(engine) -> list[tuple[str, int | None]]:
    with Session(engine) as session:
        return [(e.kind, e.obligation_id) for e in session.exec(select(Event).order_by(Event.id))]


def states(engine) -> dict[int, tuple[str, datetime | None, str | None]]:
    with Session(engine) as session:
        return {o.id: (o.state, o.done_at, o.reason) for o in session.exec(select(Obligation))}


def columns(sheet) -> dict[str, int]:
    return {cell.value: cell.column for cell in sheet[1]}


# -- the attachment, as a clerk opens it ---------------------------------------------------------


def test_the_attachment_is_made_for_a_clerk(site) -> None:
    _config_path, engine, attachment = site
    book = load_workbook(attachment)
    assert book.sheetnames == ["启用前已到期事项", "填写说明"]  # the import reads the first
    sheet = book["启用前已到期事项"]
    assert sheet.freeze_panes == "A2"
    col = columns(sheet)
    rows = sheet.max_row - 1
    with Session(engine) as session:
        before = session.exec(select(Obligation).where(Obligation.due < date(2026, 12, 2))).all()
    assert rows == len(before) > 30
    # 状态: a drop-down of the two words the import reads, on every data row
    (validation,) = sheet.data_validations.dataValidation
    assert validation.type == "list" and validation.formula1 == '"已办结,已免除"'
    assert validation.allow_blank and validation.showErrorMessage
    state = sheet.cell(1, col["状态"]).column_letter
    assert str(validation.sqref) == f"{state}2:{state}{rows + 1}"
    # 截止日期: date cells holding the due dates; 完成日期: empty cells formatted as dates
    for row in range(2, rows + 2):
        due = sheet.cell(row, col["截止日期"])
        assert due.is_date and isinstance(due.value, datetime), (row, due.value)
        done_on = sheet.cell(row, col["完成日期"])
        assert done_on.value is None and done_on.is_date
    assert isinstance(sheet.cell(2, col["事项编号"]).value, int)
    guide = [c.value for (c,) in book["填写说明"].iter_rows(max_col=1)]
    assert guide[0] == "填写说明"
    text = "\n".join(guide)
    for words in ("已办结", "已免除", "2026/6/5", "2026年6月5日", "分批", "duban import-status"):
        assert words in text, words


def test_a_sheet_filled_in_batches_is_imported_again_and_again(site) -> None:
    """The clerk fills in a few rows and the administrator imports the file; the clerk fills in more
    of the same file and it is imported again: the rows already recorded are skipped and counted.
    Imported once more unchanged: every row is counted as already done, nothing changes, exit 0."""
    config, engine, attachment = site
    book = load_workbook(attachment)
    sheet = book.active
    col = columns(sheet)
    ids = [sheet.cell(row, col["事项编号"]).value for row in range(2, 8)]

    def fill(row: int, state: str, *, done_on=None, evidence=None, reason=None) -> None:
        sheet.cell(row, col["状态"]).value = state
        sheet.cell(row, col["完成日期"]).value = done_on
        sheet.cell(row, col["佐证材料"]).value = evidence
        sheet.cell(row, col["理由"]).value = reason

    fill(2, "已办结", done_on=date(2026, 6, 5), evidence="县司法局〔2026〕3号")  # a date cell
    fill(3, "已办结", done_on=datetime(2026, 6, 8, 15, 30))  # a date-time cell
    fill(4, "已免除", reason="本单位无此项职能")
    batch = attachment.with_name("batch.xlsx")
    book.save(batch)
    first = run(config, batch)
    assert first.returncode == 0, first.stderr
    assert (
        first.stdout.strip()
        == f"{batch}：记为已办结 2 项、已免除 1 项；{sheet.max_row - 4} 行未填状态，未改动。"
    )

    fill(5, "已办结", done_on="2026/6/5")  # text, as typed into a text cell
    fill(6, "已办结", done_on="2026年6月8日")
    fill(7, "已免除", reason="该事项由县政府统一办理")
    book.save(batch)
    second = run(config, batch)
    assert second.returncode == 0, second.stderr
    assert "记为已办结 2 项、已免除 1 项；3 行已是所填状态，跳过" in second.stdout

    recorded, audit = states(engine), events(engine)
    third = run(config, batch)
    assert third.returncode == 0, third.stderr
    assert "记为已办结 0 项、已免除 0 项；6 行已是所填状态，跳过" in third.stdout
    assert states(engine) == recorded and events(engine) == audit  # nothing changed, nothing audited

    days = {
        ids[0]: local(2026, 6, 5),
        ids[1]: local(2026, 6, 8),
        ids[3]: local(2026, 6, 5),
        ids[4]: local(2026, 6, 8),
    }
    for oid, at in days.items():
        assert recorded[oid][:2] == ("done", at)
    assert recorded[ids[2]][0] == recorded[ids[5]][0] == "waived"
    kinds = [kind for kind, oid in audit if oid in ids]
    assert kinds.count("obligation.done") == 4 and kinds.count("obligation.waived") == 2
    assert [kind for kind, _ in audit].count("import.status") == 2


# -- dates as people type them ----------------------------------------------------------------------

ACCEPTED = {
    "2026-06-05": date(2026, 6, 5),
    "2026/6/5": date(2026, 6, 5),
    "2026.6.5": date(2026, 6, 5),
    "2026年6月8日": date(2026, 6, 8),
    "２０２６年６月９日": date(2026, 6, 9),  # full-width digits
    "2026/6/10 0:00": date(2026, 6, 10),  # a date-time cell saved as CSV
}
REFUSED = {
    "2026/6/31": "「2026/6/31」不是有效日期：6月没有31日",
    "2026-02-29": "「2026-02-29」不是有效日期：2026年不是闰年，2月没有29日",
    "2026-13-01": "「2026-13-01」不是有效日期：没有13月",
    "6/5/2026": "「6/5/2026」无法确定是6月5日还是5月6日：请按“年/月/日”的顺序填写，如 2026/6/5",
    "26/6/5": "「26/6/5」的年份不是四位数：请写全年份，如 2026-06-05、2026/6/5 或 2026年6月5日",
    "6月5日": "「6月5日」没有年份：请写明哪一年，如 2026年6月5日",
    "46178": "「46178」是一个数字，不是日期（单元格未设为日期格式）：请填写日期，如 2026-06-05、2026/6/5 或 2026年6月5日",
    "2026-12-10": "2026年12月10日还没有到（今天是2026年12月4日）",
}


def _overdue(engine, n: int) -> list[int]:
    with Session(engine) as session:
        query = select(Obligation.id).where(Obligation.state == "overdue").order_by(Obligation.id).limit(n)
        return list(session.exec(query))


def test_the_dates_people_type_are_read_and_the_impossible_ones_say_why(site, tmp_path) -> None:
    config, engine, _attachment = site
    ids = _overdue(engine, len(ACCEPTED) + len(REFUSED))
    refused = tmp_path / "refused.csv"
    lines = "".join(f"{oid},已办结,{text}\n" for oid, text in zip(ids, REFUSED, strict=False))
    refused.write_text("事项编号,状态,完成日期\n" + lines, encoding="utf-8")
    before = states(engine)
    result = run(config, refused)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{refused}:{n}: 列「完成日期」：{message}" for n, message in enumerate(REFUSED.values(), start=2)
    ]
    assert states(engine) == before

    accepted = tmp_path / "accepted.csv"
    lines = "".join(f"{oid},已办结,{text}\n" for oid, text in zip(ids, ACCEPTED, strict=False))
    accepted.write_text("事项编号,状态,完成日期\n" + lines, encoding="utf-8")
    result = run(config, accepted)
    assert result.returncode == 0, result.stderr
    after = states(engine)
    for oid, day in zip(ids, ACCEPTED.values(), strict=False):
        assert after[oid][:2] == ("done", local(day.year, day.month, day.day)), oid


def test_a_number_in_a_cell_not_formatted_as_a_date_is_not_taken_for_a_day(site, tmp_path) -> None:
    """46178 is 2026-06-05 as an Excel serial day; in a cell formatted as a date it is that day,
    in a plain number cell it is refused (a 事项编号 typed one column to the right, say)."""
    config, engine, attachment = site
    book = load_workbook(attachment)
    sheet = book.active
    col = columns(sheet)
    first, second = sheet.cell(2, col["事项编号"]).value, sheet.cell(3, col["事项编号"]).value
    sheet.cell(2, col["状态"]).value = sheet.cell(3, col["状态"]).value = "已办结"
    sheet.cell(2, col["完成日期"]).value = 46178  # the attachment's date format: a day
    plain = sheet.cell(3, col["完成日期"])
    plain.value, plain.number_format = 46178, "General"
    path = tmp_path / "serials.xlsx"
    book.save(path)
    result = run(config, path)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{path}:3: 列「完成日期」：{REFUSED['46178']}"]
    plain.number_format = "yyyy/m/d"
    book.save(path)
    assert run(config, path).returncode == 0
    recorded = states(engine)
    assert recorded[first][1] == recorded[second][1] == local(2026, 6, 5)


# -- the column, not a flag ---------------------------------------------------------------------------


def test_a_problem_names_the_column_as_the_sheet_heads_it(site, tmp_path) -> None:
    """A sheet an office made itself: 任务编号, 单位 (a unit's id or name), 期次. Every problem is the
    column's name and what is wrong with it, never a command-line flag."""
    config, engine, _attachment = site
    with Session(engine) as session:
        every = session.exec(select(Obligation)).all()
    overdue = [o for o in every if o.state == "overdue"]
    once = next(o for o in overdue if o.occurrence is None)
    recurring = next(o for o in overdue if o.occurrence)
    owing = {o.unit for o in every if o.task == recurring.task}
    other = next(o.unit for o in overdue if o.unit not in owing)
    sheet = tmp_path / "own.csv"
    sheet.write_text(
        "任务编号,单位,期次,状态,完成日期,理由\n"
        f"{once.task},不存在的局,,已办结,2026-06-05,\n"
        f"{recurring.task},{other},,已办结,2026-06-05,\n"
        f"{recurring.task},{recurring.unit},2099-01-01,已办结,2026-06-05,\n"
        f"T999,{once.unit},,已办结,2026-06-05,\n"
        f"{once.task},,,已办结,2026-06-05,\n"
        f"{once.task},{once.unit},,已免除,,\n"
        f"{once.task},{once.unit},,已免除,2026-06-05,理由\n",
        encoding="utf-8",
    )
    result = run(config, sheet)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [f"{sheet}:{n}" for n in range(2, 9)]
    messages = [line.split(": ", 1)[1] for line in lines]
    assert messages[0] == "列「单位」：没有单位「不存在的局」：请填写单位编号或单位全称"
    assert messages[1].startswith(
        f"列「单位」：任务 {recurring.task} 没有「{other}」的事项（该任务的责任单位："
    )
    assert (
        messages[2].startswith(f"列「期次」：任务 {recurring.task} 在")
        and "没有期次「2099-01-01」" in messages[2]
    )
    assert messages[3] == "列「任务编号」：没有任务「T999」的事项"
    assert messages[4] == f"列「单位」：未填写：任务 {once.task} 须同时填写责任单位（单位编号或单位全称）"
    assert messages[5] == "列「理由」：免除须填写理由（如“本单位无此项职能”）"
    assert messages[6] == "列「完成日期」：免除的事项没有完成日期：请留空"
    assert not any("--" in m for m in messages)


def test_a_row_that_disagrees_with_the_record_is_refused_not_skipped(site, tmp_path) -> None:
    config, engine, _attachment = site
    done, waived = _overdue(engine, 2)
    sheet = tmp_path / "first.csv"
    sheet.write_text(
        f"事项编号,状态,完成日期,理由\n{done},已办结,2026-06-05,\n{waived},已免除,,不适用\n", encoding="utf-8"
    )
    assert run(config, sheet).returncode == 0
    again = tmp_path / "again.csv"
    again.write_text(
        "事项编号,状态,完成日期,理由\n"
        f"{done},已办结,2026-06-20,\n"  # done by then: the record says so already — skipped
        f"{waived},已免除,,另一个理由\n",  # waived already: skipped
        encoding="utf-8",
    )
    result = run(config, again)
    assert result.returncode == 0 and "2 行已是所填状态，跳过" in result.stdout
    audit = events(engine)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text(
        "事项编号,状态,完成日期,理由\n"
        f"{done},已办结,2026-06-01,\n"  # earlier than recorded: the sheet and the record disagree
        f"{waived},已办结,2026-06-01,\n"
        f"{done},已免除,,不适用\n",
        encoding="utf-8",
    )
    result = run(config, wrong)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"{wrong}:2: 列「完成日期」：事项 #{done} 已记录为2026年6月5日办结，晚于表中的2026年6月1日："
        f"如表中日期属实，请先撤销原记录（duban reopen {done}）再导入",
        f"{wrong}:3: 列「状态」：事项 #{waived} 已是「已免除」，不能再记为「已办结」：如需更改，请先撤销原记录（duban reopen {waived}）",
        f"{wrong}:4: 列「状态」：事项 #{done} 已是「已办结」，不能再记为「已免除」：如需更改，请先撤销原记录（duban reopen {done}）",
    ]
    twice = tmp_path / "twice.csv"
    twice.write_text(
        f"事项编号,状态,理由\n{waived},已免除,不适用\n#{waived},已免除,不适用\n", encoding="utf-8"
    )
    result = run(config, twice)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"{twice}:3: 列「事项编号」：事项 #{waived} 在第 2 行已经出现"]
    assert events(engine) == audit
