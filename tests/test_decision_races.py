"""Decisions and a unit's answers under real concurrency (issue 26), on SQLite and on PostgreSQL:
a real uvicorn, real HTTP clients in threads, and the CLI as a real subprocess beside the page.

The requests are lined up at their first write (``race_support.FirstWrites``): every read a
request makes before it writes is done, then they all write at once — the moment where two
decisions were both applied, and a double tap stored two or three rows or answered 500.
This is the standing concurrency test: a few seconds per database.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from race_support import Background, FirstWrites, PausedWrite, at_once, office_client, pg_web_env

from tests.web_support import (  # noqa: F401 (fixtures)
    PDF,
    TIMEOUT,
    WebEnv,
    csrf_for,
    get,
    post,
    start_web_env,
    web_template_fixture,
)

ALREADY = "该申请已经处理过了"


@pytest.fixture(scope="module")
def pg_web(tmp_path_factory) -> Iterator[WebEnv]:
    """One PostgreSQL deployment for the module (its start costs a `run --once`): each test acts on
    obligations of its own and counts only those."""
    with pg_web_env(tmp_path_factory.mktemp("pg") / "deploy") as found:
        yield found


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def web(request, duban_env, web_template) -> Iterator[WebEnv]:
    """The portal on a SQLite file (a copy of the template deployment), then on PostgreSQL."""
    if request.param == "postgres":
        yield request.getfixturevalue("pg_web")
        return
    found = start_web_env(duban_env, template=web_template)
    yield found
    found.server.stop()
    found.portal.engine.dispose()


def _complete(web: WebEnv, unit: str, task: str = "T2") -> int:
    """The unit's 办结申请 through its page; the submission's id."""
    link, oid = web.unit_link(unit), web.obligation_id(unit, task)
    token = csrf_for(get(link).text, f"/o/{oid}/complete")
    sent = post(f"{link}/o/{oid}/complete", data={"csrf": token, "note": "文号 1"})
    assert sent.status_code == 303, sent.text
    return web.env.scalar("SELECT id FROM submission WHERE obligation_id = :o AND kind = 'completion'", o=oid)


def _decide(office: httpx.Client, web: WebEnv, sid: int, action: str, **fields) -> httpx.Response:
    board = office.get(f"{web.url}/office").text
    token = csrf_for(board, f"/{sid}/{action}")
    return office.post(f"{web.url}/office/review/{sid}/{action}", data={"csrf": token, **fields})


def _outcome(web: WebEnv, sid: int) -> tuple[str, str, list[str], int]:
    """(decision, obligation state, decision events in the audit log, the unit's notices of it)."""
    decision, oid = web.env.rows("SELECT decision, obligation_id FROM submission WHERE id = :s", s=sid)[0]
    state = web.env.scalar("SELECT state FROM obligation WHERE id = :o", o=oid)
    events = [
        kind
        for (kind,) in web.env.rows(
            "SELECT kind FROM event WHERE obligation_id = :o AND kind IN "
            "('obligation.done', 'submission.returned', 'obligation.extended') ORDER BY id",
            o=oid,
        )
    ]
    notices = web.env.scalar(
        "SELECT count(*) FROM notification_item WHERE obligation_id = :o AND kind LIKE 'submission_%'", o=oid
    )
    return decision, state, events, notices


def test_two_decisions_sent_at_once_apply_one_and_the_other_is_told(web: WebEnv):
    sid = _complete(web, "town-02", "T1")
    office = office_client(web)
    board = office.get(f"{web.url}/office").text
    approve, back = csrf_for(board, f"/{sid}/approve"), csrf_for(board, f"/{sid}/return")
    url = f"{web.url}/office/review/{sid}"
    lined_up = FirstWrites(web.portal.engine, 2)
    try:
        answers = at_once(
            lambda: office.post(f"{url}/approve", data={"csrf": approve}),
            lambda: office.post(f"{url}/return", data={"csrf": back, "reason": "缺少盖章页"}),
        )
    finally:
        lined_up.remove()
    codes = sorted(a.status_code for a in answers)
    assert codes == [303, 409], [a.text[:300] for a in answers]
    (loser,) = [a for a in answers if a.status_code == 409]
    assert ALREADY in loser.text
    decision, state, events, notices = _outcome(web, sid)
    if decision == "approved":
        assert (state, events) == ("done", ["obligation.done"])
    else:
        assert decision == "returned" and state in ("open", "overdue") and events == ["submission.returned"]
    assert notices == 1  # the unit hears of the one decision that was made


def test_the_cli_and_the_page_decide_at_once(web: WebEnv):
    office = office_client(web)
    # the page's 通过 is on its way (its reads done) when `duban review return` runs and commits
    first = _complete(web, "town-00", "T1")
    token = csrf_for(office.get(f"{web.url}/office").text, f"/{first}/approve")
    paused = PausedWrite(web.portal.engine)
    try:
        page = Background(
            lambda: office.post(f"{web.url}/office/review/{first}/approve", data={"csrf": token})
        )
        assert paused.arrived.wait(30), "the page's decision never reached its write"
        cli = web.env.cli("review", "return", str(first), "--reason", "材料不全")
        assert cli.returncode == 0, cli.stdout + cli.stderr
        paused.go()
        answer = page.result()
    finally:
        paused.remove()
    assert answer.status_code == 409 and ALREADY in answer.text
    assert _outcome(web, first)[:3] == ("returned", "open", ["submission.returned"])
    # the page first, then the CLI: one line, exit 1, nothing changed
    second = _complete(web, "town-01", "T1")
    assert _decide(office, web, second, "approve").status_code == 303
    cli = web.env.cli("review", "approve", str(second))
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert cli.stderr.count("\n") == 1 and "already decided" in cli.stderr and "Traceback" not in cli.stderr
    assert _outcome(web, second) == ("approved", "done", ["obligation.done"], 1)


def test_a_units_double_tap_and_forms_sent_at_once_store_one_row(web: WebEnv):
    link, oid = web.unit_link("town-00"), web.obligation_id("town-00", "T2")
    page = get(link).text
    token = csrf_for(page, f"/o/{oid}/complete")
    files = [("files", ("报告.pdf", PDF, "application/pdf"))]

    def tap(csrf: str):
        return lambda: post(f"{link}/o/{oid}/complete", data={"csrf": csrf, "note": "文号 X"}, files=files)

    lined_up = FirstWrites(web.portal.engine, 3)
    try:
        answers = at_once(tap(token), tap(token), tap(token))  # the same form three times
    finally:
        lined_up.remove()
    assert [a.status_code for a in answers] == [303] * 3, [a.text[:300] for a in answers]
    assert web.env.scalar("SELECT count(*) FROM submission WHERE obligation_id = :o", o=oid) == 1
    kept = "SELECT count(*) FROM evidence JOIN submission ON submission.id = submission_id WHERE obligation_id = :o"
    assert web.env.scalar(kept, o=oid) == 1
    # three forms for one obligation (three renderings of the page) at once: one completion
    other_link, other = web.unit_link("town-01"), web.obligation_id("town-01", "T2")
    forms = [csrf_for(get(other_link).text, f"/o/{other}/complete") for _ in range(3)]
    lined_up = FirstWrites(web.portal.engine, 3)
    try:
        answers = at_once(
            *(
                (lambda f=f: post(f"{other_link}/o/{other}/complete", data={"csrf": f, "note": "文号 Y"}))
                for f in forms
            )
        )
    finally:
        lined_up.remove()
    assert [a.status_code for a in answers] == [303] * 3, [a.text[:300] for a in answers]
    assert web.env.scalar("SELECT count(*) FROM submission WHERE obligation_id = :o", o=other) == 1
    assert web.env.scalar("SELECT state FROM obligation WHERE id = :o", o=other) == "submitted"
    submitted = "SELECT count(*) FROM event WHERE obligation_id = :o AND kind = 'obligation.submitted'"
    assert web.env.scalar(submitted, o=other) == 1
    # every answer leads to the result: the page says the one request waits for review
    followed = get(other_link + f"?ok=complete&o={other}")
    assert "办结申请已提交，等待督办部门审核" in followed.text
    # and the office approves it (no duplicate left in its queue)
    sid = web.env.scalar("SELECT id FROM submission WHERE obligation_id = :o", o=other)
    office = office_client(web)
    assert _decide(office, web, sid, "approve").status_code == 303
    assert f"/office/review/{sid}/" not in office.get(f"{web.url}/office").text
