"""What a unit and the office are answered (issue 26), over real HTTP against a real uvicorn:
the office's audit internals never reach a unit, dates within the program's year and a margin,
texts refused (never cut) past 2,000 characters and kept in the form, 签收 and 反馈 only while an
obligation is owed, 全部签收, a limit of POSTs that fits a clerk's day, ids past the largest row id,
an evidence folder that cannot be written (the server's fault, a 503), and the unit page's
queries by the unit's index."""

from __future__ import annotations

import html
import re

import pytest
import structlog
from fault_support import unwritable
from race_support import office_client
from sqlalchemy import event, text
from sqlmodel import Session
from structlog.testing import capture_logs

from orchestrator.admin.unit_page import unit_obligations
from orchestrator.cli import main
from tests.web_support import (  # noqa: F401 (fixtures)
    PDF,
    WebEnv,
    csrf_for,
    get,
    post,
    web_fixture,
    web_template_fixture,
)

HUGE = "99999999999999999999"  # past the largest row id (2^63 - 1)


@pytest.fixture(autouse=True)
def _restore_logging():
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _page(web: WebEnv, unit: str = "town-00", task: str = "T2") -> tuple[str, int, str]:
    link, oid = web.unit_link(unit), web.obligation_id(unit, task)
    return link, oid, get(link).text


def _cli(web: WebEnv, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """``duban`` in this process, on the web deployment's config, at the test clock."""
    monkeypatch.setenv("DUBAN_FAKE_NOW", web.env.base_env()["DUBAN_FAKE_NOW"])
    monkeypatch.setenv("COLUMNS", "200")
    capsys.readouterr()
    code = main(["--config", str(web.env.config_path), *args])
    out, err = capsys.readouterr()
    return code, out, err


# -- 3. what a unit sees of the office -------------------------------------------------------------


def test_a_unit_sees_what_the_office_wrote_never_its_address_or_user_agent(web: WebEnv):
    link, oid, page = _page(web)
    token = csrf_for(page, f"/o/{oid}/complete")
    assert post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "文号 1"}).status_code == 303
    sid = web.env.scalar("SELECT id FROM submission")
    office = office_client(web)
    office.headers["User-Agent"] = "OfficeBrowser/9.1 (Windows NT 10.0)"
    board = office.get(f"{web.url}/office").text
    returned = office.post(
        f"{web.url}/office/review/{sid}/return",
        data={"csrf": csrf_for(board, f"/{sid}/return"), "reason": "缺少盖章页"},
    )
    assert returned.status_code == 303
    detail = web.env.scalar("SELECT detail FROM event WHERE kind = 'submission.returned'")
    assert "client=127.0.0.1" in detail and "OfficeBrowser" in detail  # the audit log keeps them
    page = get(link).text
    assert "督办办公室 · 退回：缺少盖章页" in page
    text = re.sub(r"https?://127\.0\.0\.1:\d+/\S*", "", page)  # (the page's own links: the feed's address)
    assert "OfficeBrowser" not in text and "127.0.0.1" not in text and "client=" not in text


# -- 7. absurd dates ---------------------------------------------------------------------------------


def test_an_extension_lies_within_the_programs_year_and_its_margin(web: WebEnv, monkeypatch, capsys):
    link, oid, page = _page(web)
    assert 'max="2027-12-31"' in page and "最晚 2027年12月31日（周五）" in page
    token = csrf_for(page, f"/o/{oid}/extend")
    refused = post(f"{link}/o/{oid}/extend", data={"csrf": token, "until": "9999-12-31", "note": "需会签"})
    assert refused.status_code == 400
    assert "新的截止日期最晚为2027年12月31日（周五）" in refused.text
    assert 'value="9999-12-31"' in refused.text and "需会签</textarea>" in refused.text  # kept
    assert web.count("submission") == 0
    asked = post(f"{link}/o/{oid}/extend", data={"csrf": token, "until": "2027-12-31", "note": "需会签"})
    assert asked.status_code == 303
    sid = web.env.scalar("SELECT id FROM submission")
    office = office_client(web)
    board = office.get(f"{web.url}/office").text
    refused = office.post(
        f"{web.url}/office/review/{sid}/approve",
        data={"csrf": csrf_for(board, f"/{sid}/approve"), "until": "9999-12-31"},
    )
    assert refused.status_code == 400 and "延期后的日期最晚为2027年12月31日（周五）" in refused.text
    # the CLI: one line, exit 2, for the date given and for a request stored before the limit
    code, _, err = _cli(web, monkeypatch, capsys, "review", "approve", str(sid), "--until", "9999-12-31")
    assert code == 2 and err.count("\n") == 1
    assert "9999-12-31 is after the latest date allowed, 2027-12-31" in err
    web.env.engine().dispose()
    with web.portal.engine.begin() as connection:
        connection.execute(text("UPDATE submission SET requested = '9999-12-31' WHERE id = :s"), {"s": sid})
    code, _, err = _cli(web, monkeypatch, capsys, "review", "approve", str(sid))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "latest date allowed" in err
    assert web.env.scalar("SELECT decision FROM submission") is None
    assert web.env.scalar("SELECT due FROM obligation WHERE id = :o", o=oid).startswith("2026-06-12")


# -- 9. texts, finished obligations, 全部签收, the limit of POSTs ----------------------------------------


def test_a_text_over_2000_characters_is_refused_whole_and_kept_in_the_form(web: WebEnv):
    link, oid, page = _page(web)
    token = csrf_for(page, f"/o/{oid}/feedback")
    long = "进" * 1999 + "展。"
    refused = post(f"{link}/o/{oid}/feedback", data={"csrf": token, "note": long})
    assert refused.status_code == 400
    assert "说明文字过长：2001 字，最多 2000 字" in refused.text
    assert long + "</textarea>" in refused.text  # what the unit typed, whole, in the form it sent
    assert web.count("submission") == 0 and "已提交" not in refused.text
    fits = post(f"{link}/o/{oid}/feedback", data={"csrf": token, "note": long[:2000]})
    assert fits.status_code == 303
    assert len(web.env.scalar("SELECT note FROM submission")) == 2000  # stored whole
    # the office's reason likewise
    complete = csrf_for(get(link).text, f"/o/{oid}/complete")
    assert post(f"{link}/o/{oid}/complete", data={"csrf": complete, "note": "x"}).status_code == 303
    sid = web.env.scalar("SELECT id FROM submission WHERE kind = 'completion'")
    office = office_client(web)
    board = office.get(f"{web.url}/office").text
    refused = office.post(
        f"{web.url}/office/review/{sid}/return",
        data={"csrf": csrf_for(board, f"/{sid}/return"), "reason": long},
    )
    assert refused.status_code == 400 and "2001 字，最多 2000 字" in refused.text
    assert html.escape(long) + "</textarea>" in refused.text
    assert web.env.scalar("SELECT decision FROM submission WHERE id = :s", s=sid) is None


def test_acknowledge_and_feedback_are_refused_on_a_finished_obligation(web: WebEnv, monkeypatch, capsys):
    link, oid, page = _page(web)
    ack, feedback = csrf_for(page, f"/o/{oid}/acknowledge"), csrf_for(page, f"/o/{oid}/feedback")
    assert _cli(web, monkeypatch, capsys, "done", str(oid))[0] == 0
    refused = post(f"{link}/o/{oid}/acknowledge", data={"csrf": ack})
    assert refused.status_code == 400 and "该事项已办结或已免除，无需再签收" in refused.text
    refused = post(f"{link}/o/{oid}/feedback", data={"csrf": feedback, "note": "补充说明"})
    assert refused.status_code == 400 and "该事项已办结或已免除，不能再反馈进展" in refused.text
    assert web.count("submission") == 0
    assert web.env.scalar("SELECT count(*) FROM event WHERE kind LIKE 'unit.%'") == 0


def test_acknowledge_all_acknowledges_every_open_obligation_once(web: WebEnv):
    link = web.unit_link("town-00")
    page = get(link).text
    assert "全部签收（2 项）" in page
    token = csrf_for(page, "/acknowledge-all")
    assert post(f"{link}/acknowledge-all", data={"csrf": "forged"}).status_code == 403
    assert post(f"{link}/acknowledge-all").status_code == 403
    assert web.count("submission") == 0
    done = post(f"{link}/acknowledge-all", data={"csrf": token})
    assert done.status_code == 303 and done.headers["location"].endswith("?ok=acknowledge-all&n=2")
    assert "已签收 2 项" in get(link + "?ok=acknowledge-all&n=2").text
    again = post(f"{link}/acknowledge-all", data={"csrf": token})
    assert again.status_code == 303 and again.headers["location"].endswith("&n=0")
    rows = web.env.rows("SELECT obligation_id, kind, unit FROM submission ORDER BY obligation_id")
    ids = sorted([web.obligation_id("town-00", "T1"), web.obligation_id("town-00", "T2")])
    assert rows == [(ids[0], "acknowledge", "town-00"), (ids[1], "acknowledge", "town-00")]
    events = web.env.rows(
        "SELECT obligation_id, actor FROM event WHERE kind = 'unit.acknowledged' ORDER BY 1"
    )
    assert events == [(ids[0], "unit:town-00"), (ids[1], "unit:town-00")]
    page = get(link).text
    assert "全部签收" not in page and '/acknowledge"' not in page  # no 签收 left to offer
    assert web.env.scalar("SELECT count(*) FROM submission WHERE unit != 'town-00'") == 0


def test_a_clerks_day_of_answers_fits_the_limit_of_posts(web: WebEnv):
    """34 items answered one by one in a minute (the figure of the issue) are not held back."""
    link, oid, page = _page(web)
    token = csrf_for(page, f"/o/{oid}/feedback")
    codes = [
        post(f"{link}/o/{oid}/feedback", data={"csrf": token, "note": f"第{n}项进展"}).status_code
        for n in range(34)
    ]
    assert codes == [303] * 34


# -- 14. ids past the largest row id ---------------------------------------------------------------------


def test_an_id_past_the_largest_row_id_is_a_404(web: WebEnv):
    link, oid, page = _page(web)
    token = csrf_for(page, f"/o/{oid}/acknowledge")
    assert post(f"{link}/o/{HUGE}/acknowledge", data={"csrf": token}).status_code == 404
    office = office_client(web)
    board = office.get(f"{web.url}/office").text
    answer = office.post(f"{web.url}/office/review/{HUGE}/approve", data={"csrf": _any_csrf(board)})
    assert answer.status_code == 404
    assert web.count("submission") == 0


def _any_csrf(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


# -- 15. the evidence folder cannot be written ----------------------------------------------------------


def test_an_unwritable_evidence_folder_is_the_servers_fault(web: WebEnv, monkeypatch, capsys):
    link, oid, page = _page(web)
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [("files", ("报告.pdf", PDF, "application/pdf"))]
    folder = web.portal.evidence_dir
    with unwritable(folder), capture_logs() as logs:
        answer = post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "文号 1"}, files=files)
    assert answer.status_code == 503, answer.text
    assert "请稍后再试" in answer.text and "请求有误" not in answer.text and "检查" not in answer.text
    (line,) = [entry for entry in logs if entry["event"] == "evidence.unwritable"]
    assert line["log_level"] == "error" and line["folder"] == str(folder) and line["error"]
    assert web.count("submission") == 0 and web.count("evidence") == 0
    code, out, _ = _cli(web, monkeypatch, capsys, "status")
    assert code == 0 and f"证据材料文件夹 {folder} 无法写入" in out
    code, out, _ = _cli(web, monkeypatch, capsys, "status", "--json")
    assert '"evidence_fault"' in out and str(folder) in out
    # the folder mended, the next upload goes through and status no longer says it
    assert (
        post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "文号 1"}, files=files).status_code
        == 303
    )
    code, out, _ = _cli(web, monkeypatch, capsys, "status")
    assert "无法写入" not in out


# -- 17. the unit page goes by the unit's index ---------------------------------------------------------


def test_the_unit_pages_queries_go_by_the_units_index(web: WebEnv):
    """EXPLAIN QUERY PLAN of every statement the page's read makes, on SQLite without statistics
    (what a database has after its program's start): the obligations by ``ix_obligation_unit``,
    never the program's (program, task, due) index; no statement reads a whole table."""
    engine = web.portal.engine
    with engine.begin() as connection:
        assert not connection.execute(
            text("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
        ).all()
    seen: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        with Session(engine) as session:
            assert unit_obligations(session, "town-00", web.now().date(), desk=web.portal.desk)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    plans = {}
    with engine.connect() as connection:
        for statement, parameters in seen:
            rows = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
            plans[statement] = " | ".join(row[-1] for row in rows)
    (obligations,) = [plan for sql, plan in plans.items() if "FROM obligation" in sql]
    assert "ix_obligation_unit" in obligations and "ix_obligation_group" not in obligations, obligations
    for sql, plan in plans.items():
        scans = [part for part in plan.split(" | ") if part.startswith("SCAN") and "program" not in part]
        assert not scans, (sql, plan)
