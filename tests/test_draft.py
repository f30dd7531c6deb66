"""``duban draft`` end to end, on plans written for these tests: a .txt and a .docx with a table of
tasks. The draft is valid TOML; every value it reads cites a line that holds the words it was read
from; nothing is invented; its placeholders fail ``duban validate`` loudly and, once a person has
filled them in, the draft loads as a plan. Inputs are bounded, each refusal one line."""

from __future__ import annotations

import re
import tomllib
import zipfile
from pathlib import Path

import pytest
from support import unit, units_toml

from orchestrator.cli import main
from workflows.draft.render import chinese
from workflows.draft.source import MAX_LINE_CHARS, MAX_LINES, MAX_TEXT_BYTES

PLAN = """\
县优化营商环境专项行动实施方案

为持续优化营商环境，结合我县实际，制定本方案。

一、总体要求
坚持问题导向，到2024年底，全县营商环境明显改善。

二、重点任务
（一）深化“放管服”改革
1. 推行证明事项告知承诺制。各部门于2024年6月30日前公布告知承诺事项清单（县司法局牵头，县直各有关部门按职责分工负责）。
2. 规范涉企检查。每季度末报送检查计划执行情况。
牵头单位：县市场监督管理局
责任单位：各行政执法部门、各乡镇人民政府
（二）加强法治保障
3. 清理规范性文件。规范性文件每两年清理一次；在规范性文件有效期届满前6个月内，制定机关应当进行评估。
4. 县政府每年12月底前向县人大常委会报告优化营商环境工作情况，乡镇政府每年12月底前向乡镇人大主席团报告。
牵头单位：县司法局、县政府办公室
责任单位：各行政执法部门、各乡镇人民政府

三、实施步骤
（一）动员部署阶段（2024年4月—5月中旬）。各乡镇人民政府和各行政执法部门制定本单位实施方案。
（二）集中攻坚阶段（2024年5月16日至10月31日）。由县司法局负责组织推进各项重点任务。
（三）总结验收阶段（2024年11月1日至12月15日）。

四、保障措施
1. 加强组织领导。成立专项行动领导小组。
2. 强化督查考核。各单位工作进展情况于每月5日前报县营商办。
"""

UNITS = units_toml(
    unit("justice", "县司法局", "justice_bureau", "law_enforcement_agency"),
    unit("market", "县市场监督管理局", "market_regulation_bureau", "law_enforcement_agency"),
    unit("police", "县公安局", "law_enforcement_agency"),
    unit("gov-office", "县政府办公室", "county_government_office"),
    unit("town-a", "东溪乡人民政府", "township_government"),
    unit("town-b", "城关镇人民政府", "township_government"),
)
DATE_KEYS = ("due", "rrule", "anchor", "window", "start", "end")
CITED = re.compile(r"^# 原文第(\d+)行：「(.*)」$")


def draft(tmp_path: Path, capsys, text: str = PLAN, *, units: bool = True, name: str = "plan.txt"):
    plan = tmp_path / name
    if isinstance(text, str):
        plan.write_text(text, encoding="utf-8")
    (tmp_path / "units.toml").write_text(UNITS, encoding="utf-8")
    out = tmp_path / "draft.toml"
    args = ["draft", str(plan), "--out", str(out)] + (
        ["--units", str(tmp_path / "units.toml")] if units else []
    )
    (tmp_path / "config.toml").write_text('[database]\nurl = "sqlite:///x.db"\n', encoding="utf-8")
    code = main(["--config", str(tmp_path / "config.toml"), *args])
    captured = capsys.readouterr()
    return code, out, captured.err


def entries_of(text: str) -> list[list[str]]:
    """The draft's tables, each as its lines (header first)."""
    found, current = [], None
    for line in text.splitlines():
        if line.startswith("["):
            current = [line]
            found.append(current)
        elif current is not None:
            current.append(line)
    return found


# -- what it reads -----------------------------------------------------------------------------------


def test_a_plans_text_becomes_sections_phases_tasks_and_duties(tmp_path, capsys):
    code, out, err = draft(tmp_path, capsys)
    assert code == 0, err
    data = tomllib.loads(out.read_text(encoding="utf-8"))  # valid TOML
    assert data["workflow"]["title"] == "县优化营商环境专项行动实施方案"
    assert [(p["name"], p["start"], p["end"]) for p in data["phases"]] == [
        ("动员部署阶段", "04-01", "05-20"),
        ("集中攻坚阶段", "05-16", "10-31"),
        ("总结验收阶段", "11-01", "12-15"),
    ]
    tasks = {t["title"]: t for t in data["tasks"]}
    assert list(tasks)[:3] == ["推行证明事项告知承诺制", "规范涉企检查", "清理规范性文件"]
    assert list(tasks)[3].startswith("县政府每年12月底前向县人大常委会报告优化营商环境工作情况")
    first = tasks["推行证明事项告知承诺制"]
    assert first["section"] == "（一）深化“放管服”改革"
    assert first["detail"].startswith("推行证明事项告知承诺制。各部门于2024年6月30日前公布")
    assert first["phase"] == "P2"  # no date of its own: the one implementation phase (marked 待核)
    # the item's own parenthesis (at its end) before its section's labels
    assert (first["lead"], first["responsible"]) == (["role:justice_bureau"], ["县直各有关部门"])
    second = tasks["规范涉企检查"]  # no units of its own: the section's labels
    assert second["lead"] == ["role:market_regulation_bureau"]
    assert second["responsible"] == ["role:law_enforcement_agency", "role:township_government"]
    fourth = tasks[list(tasks)[3]]
    assert fourth["rrule"] == "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=-1" and fourth["roll"] == "backward"
    duties = {d["detail"]: d for d in data["duties"]}
    dated = duties[
        "各部门于2024年6月30日前公布告知承诺事项清单（县司法局牵头，县直各有关部门按职责分工负责）"
    ]
    assert (dated["due"], dated["lead"], dated["responsible"]) == (
        "06-30",
        ["role:justice_bureau"],
        ["县直各有关部门"],
    )
    assert duties["每季度末报送检查计划执行情况"]["rrule"] == "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-1"
    towns = duties["乡镇政府每年12月底前向乡镇人大主席团报告"]
    assert towns["responsible"] == ["role:township_government"]
    expiry = next(d for d in data["duties"] if "届满前6个月" in d["detail"])
    assert (expiry["window"], expiry["roll"], "responsible" in expiry) == ("-6mo", "backward", False)
    phase = duties["由县司法局负责组织推进各项重点任务"]
    assert (phase["phase"], phase["responsible"]) == ("P2", ["role:justice_bureau"])
    assert not any("2024年底" in d["detail"] for d in data["duties"])  # a goal in 总体要求 is no deadline
    assert (
        "加强组织领导" in out.read_text(encoding="utf-8").split("未作为任务的条目")[1]
    )  # listed, not a task
    assert next(line for line in err.splitlines() if line.startswith("duban draft: ")).startswith(
        "duban draft: 读了 27 行：标题「县优化营商环境专项行动实施方案」；3 个阶段，4 项任务"
    )


def test_every_value_cites_a_line_that_holds_the_words_it_was_read_from(tmp_path, capsys):
    code, out, _ = draft(tmp_path, capsys)
    assert code == 0
    source = [""] + [chinese(line) for line in PLAN.splitlines()]
    text = out.read_text(encoding="utf-8")
    cited = 0
    for lines in entries_of(text):
        if not lines[0].startswith(("[[tasks]]", "[[duties]]", "[[phases]]")):
            continue
        header = re.match(r"# 原文第(\d+)行：(.*)$", lines[1])  # every entry says where it is from
        number, quoted = int(header.group(1)), header.group(2).strip("…")
        assert number < len(source) and quoted and quoted in source[number], (number, quoted)
        last_cite = None
        for line in lines[1:]:
            found = CITED.match(line)
            if found:
                last_cite = found
                where, words = int(found.group(1)), found.group(2)
                for part in words.split("；"):
                    assert part in source[where], (where, part)
                cited += 1
            key = line.split(" = ", 1)[0]
            if key in (*DATE_KEYS, "lead", "responsible") and not (key == "window" and last_cite):
                assert last_cite is not None, f"{key} without its source: {lines[0]} {lines[1]}"
    assert cited > 20


def test_nothing_is_invented_every_date_and_unit_is_in_the_text(tmp_path, capsys):
    code, out, _ = draft(tmp_path, capsys)
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    days = set()
    for table in ("tasks", "duties"):
        for entry in data.get(table, []):
            if "due" in entry:
                days.add(entry["due"])
            for ref in entry.get("lead", []) + entry.get("responsible", []):
                if not ref.startswith("role:"):
                    assert ref in PLAN, ref  # a name kept as written is the text's own
    for month_day in days:
        month, day = (int(x) for x in month_day.split("-"))
        assert f"{month}月{day}日" in PLAN or ((month, day) in ((12, 31), (6, 30)) and f"{month}月" in PLAN)
    # a plan without a single date gives tasks without dates, not guessed ones
    (tmp_path / "bare").mkdir()
    text = "二、重点任务\n1. 建立联席会议制度（县司法局负责）。\n2. 开展普法宣传（县司法局负责）。\n"
    code, out, _ = draft(tmp_path / "bare", capsys, text)
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    assert code == 0 and [t["title"] for t in data["tasks"]] == ["建立联席会议制度", "开展普法宣传"]
    assert not any(key in task for task in data["tasks"] for key in ("due", "rrule", "phase", "window"))
    assert out.read_text(encoding="utf-8").count("# 待核：原文未给本项的期限") == 2


def test_the_draft_fails_validation_loudly_until_its_placeholders_are_filled_in_then_loads(tmp_path, capsys):
    from workflows.catalog import load_bundle
    from workflows.errors import DefinitionError
    from workflows.loader import read_definition

    code, out, _ = draft(tmp_path, capsys)
    text = out.read_text(encoding="utf-8")
    problems = [str(p) for p in read_definition(out).problems]
    assert any("anchor" in p and "待定" in p for p in problems)
    assert any("rrule" in p and "DTSTART" in p for p in problems)
    assert any('bad unit reference "县直各有关部门"' in p for p in problems)
    assert any("responsible" in p for p in problems)  # 「各单位……报县营商办」: nobody named
    assert (
        code == 0
        and main(
            ["--config", str(tmp_path / "config.toml"), "validate", str(out), str(tmp_path / "units.toml")]
        )
        == 1
    )
    # a person resolves each 待核 placeholder
    text = text.replace('anchor = "register:待定.待定"', 'anchor = "register:docs.expires_on"')
    text = text.replace("DTSTART:待定", "DTSTART:20240101").replace(
        '"县直各有关部门"', '"role:law_enforcement_agency"'
    )
    text = text.replace("responsible = []", 'responsible = ["role:law_enforcement_agency"]')
    resolved = tmp_path / "resolved.toml"
    resolved.write_text(text, encoding="utf-8")
    (tmp_path / "docs.csv").write_text(
        "id,title,unit,expires_on\nd1,县规范性文件,justice,2024-09-30\n", encoding="utf-8"
    )
    try:
        bundle = load_bundle(resolved, tmp_path / "units.toml", {"docs": tmp_path / "docs.csv"})
    except DefinitionError as exc:  # pragma: no cover - the message is the point
        pytest.fail(str(exc))
    assert len(bundle.definition.tasks) == 4 and len(bundle.definition.phases) == 3


def test_without_units_names_are_kept_as_written_and_marked(tmp_path, capsys):
    code, out, err = draft(tmp_path, capsys, units=False)
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    assert code == 0
    assert data["tasks"][1]["lead"] == ["县市场监督管理局"]
    assert "未给单位文件（--units），照原文保留" in out.read_text(encoding="utf-8")
    assert "照原文保留（未给 --units 单位文件）" in err


# -- a .docx, with a table of tasks ------------------------------------------------------------------


def make_docx(path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("县法治宣传教育工作方案")
    document.add_heading("一、主要任务", level=1)
    document.add_paragraph(
        "1. 开展宪法宣传周活动。于12月4日前组织集中宣传（县司法局牵头，各乡镇人民政府按职责分工负责）。"
    )
    table = document.add_table(rows=3, cols=5)
    for cell, words in zip(
        table.rows[0].cells, ("序号", "工作任务", "牵头单位", "责任单位", "完成时限"), strict=True
    ):
        cell.text = words
    for row, words in zip(
        table.rows[1:],
        [
            ("1", "编制普法责任清单", "县司法局", "各行政执法部门", "2024年3月底前"),
            ("2", "开展法律进乡村活动", "县司法局", "各乡镇人民政府", "每季度"),
        ],
        strict=True,
    ):
        for cell, text in zip(row.cells, words, strict=True):
            cell.text = text
    document.add_heading("二、工作要求", level=1)
    document.add_paragraph("1. 各乡镇人民政府于每年12月10日前报送年度普法工作总结。")
    document.save(str(path))


def test_a_docx_with_headings_numbered_paragraphs_and_a_table_of_tasks(tmp_path, capsys):
    plan = tmp_path / "plan.docx"
    make_docx(plan)
    code, out, err = draft(tmp_path, capsys, text=None, name="plan.docx")
    assert code == 0, err
    data = tomllib.loads(out.read_text(encoding="utf-8"))
    assert data["workflow"]["title"] == "县法治宣传教育工作方案"
    tasks = {t["title"]: t for t in data["tasks"]}
    assert tasks["开展宪法宣传周活动"]["lead"] == ["role:justice_bureau"]
    assert any(d.get("due") == "12-04" for d in data["duties"])  # a dated clause after its first sentence
    assert tasks["编制普法责任清单"]["due"] == "03-31"
    assert tasks["编制普法责任清单"]["lead"] == ["role:justice_bureau"]
    assert tasks["编制普法责任清单"]["responsible"] == ["role:law_enforcement_agency"]
    assert tasks["开展法律进乡村活动"]["responsible"] == ["role:township_government"]
    assert "待定" in tasks["开展法律进乡村活动"]["rrule"]  # 「每季度」 names no day
    assert any(d.get("rrule") == "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=10" for d in data["duties"])
    assert (
        "# 原文第"
        in out.read_text(encoding="utf-8").split("编制普法责任清单", 1)[0].rsplit("[[tasks]]", 1)[1]
    )


# -- bounds and bad input: one line each, exit 2, nothing written ---------------------------------------


def refused(tmp_path, capsys, name: str, content: bytes) -> str:
    plan = tmp_path / name
    plan.write_bytes(content)
    code, out, err = draft(tmp_path, capsys, text=None, name=name)
    assert code == 2 and not out.exists()
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    return line


def test_bounded_inputs_are_refused_in_one_line(tmp_path, capsys):
    assert "too large" in refused(tmp_path, capsys, "big.txt", b"a\n" * (MAX_TEXT_BYTES // 2 + 1))
    assert "too many lines" in refused(tmp_path, capsys, "long.txt", b"\n" * (MAX_LINES + 1))
    line = refused(tmp_path, capsys, "wide.txt", "一".encode() * (MAX_LINE_CHARS + 1))
    assert line.endswith(
        f"wide.txt:1: line too long ({MAX_LINE_CHARS + 1:,} characters, at most {MAX_LINE_CHARS:,})"
    )
    assert "not a .txt or .docx" in refused(tmp_path, capsys, "plan.doc", b"\xd0\xcf\x11\xe0")
    assert "not a readable .docx" in refused(tmp_path, capsys, "fake.docx", b"not a zip")
    assert "not UTF-8 or GB18030" in refused(tmp_path, capsys, "bad.txt", b"\x81\x30\xff\xfe\xfd")


def test_a_docx_that_inflates_beyond_its_bound_is_refused_before_it_is_read(tmp_path, capsys):
    bomb = tmp_path / "bomb.docx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<" + b" " * (17 * 1024 * 1024) + b"/>")
    assert bomb.stat().st_size < 100_000
    line = refused(tmp_path, capsys, "bomb.docx", bomb.read_bytes())
    assert "the document part is too large once decompressed" in line


def test_an_existing_draft_is_not_overwritten_without_force(tmp_path, capsys):
    code, out, _ = draft(tmp_path, capsys)
    out.write_text("# my corrections\n", encoding="utf-8")
    code, out, err = draft(tmp_path, capsys)
    assert code == 2 and "exists (give --force to replace it)" in err
    assert out.read_text(encoding="utf-8") == "# my corrections\n"


def test_a_text_with_nothing_to_draft_exits_1(tmp_path, capsys):
    code, out, err = draft(tmp_path, capsys, "这是一段没有编号、没有日期的文字。\n")
    assert code == 1 and not out.exists()
    assert "nothing written" in err


def test_the_benchmark_says_clearly_when_the_plans_text_is_missing(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "nope.txt"
    result = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve().parent.parent / "benchmarks/draft_quality.py"),
            str(missing),
        ],
        capture_output=True,
        text=True,
        encoding="utf-8",
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"draft_quality: {missing}: no such file")
