"""``duban outbox [--state S] [--json]`` and ``duban outbox retry ID|--all-failed``, for real.

The deployment (conftest's ``DubanEnv``: an office and three towns) sends through a real aiosmtpd
server that refuses the addresses of 第1镇 and 第2镇 with ``550``. The real daemon (``duban run
--once``, its clock at 2026-06-10 09:30) ticks and sends: two messages are delivered, two fail.
The CLI lists them; ``retry`` puts the failed ones back; the next daemon run delivers them to the
server, which by then accepts the addresses.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path

import pytest
import structlog
from smtp_server import SmtpServer
from support import DUBAN, DubanEnv

from orchestrator.cli import main

REFUSED = {
    "town01@example.gov.cn": "550 5.1.1 no such user",
    "town02@example.gov.cn": "550 5.1.1 no such user",
}
OUTBOX_FIELDS = [
    "id", "kind", "state", "recipient", "recipient_name", "to", "subject", "send_date", "attempts",
    "next_attempt_at", "sent_at", "last_error", "refused", "message_id", "channel",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main()`` points structlog at this test's captured stderr; give later tests the config back."""
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def smtp_mail(port: int) -> str:
    return f'transport = "smtp"\n\n[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n'


@pytest.fixture(scope="module")
def server() -> Iterator[SmtpServer]:
    with SmtpServer(rcpt_reply=dict(REFUSED)) as running:
        yield running


@pytest.fixture(scope="module")
def golden(server: SmtpServer, tmp_path_factory) -> Path:
    """The deployment after one daemon run: 2 messages sent, 2 failed."""
    env = DubanEnv(tmp_path_factory.mktemp("outbox") / "deploy", mail=smtp_mail(server.port))
    env.upgrade()
    done = env.cli("run", "--once")
    assert done.returncode == 0, done.stderr
    assert len(server.received) == 2
    return env.root


@pytest.fixture
def site(golden: Path, tmp_path: Path) -> Path:
    """This test's own copy of the deployment (its config names its own database)."""
    root = tmp_path / "deploy"
    shutil.copytree(golden, root)
    config = root / "config.toml"
    config.write_text(config.read_text(encoding="utf-8").replace(str(golden), str(root)), encoding="utf-8")
    assert str(golden) not in config.read_text(encoding="utf-8")
    return root


def duban(root: Path, *args: str, now: str = "2026-06-10T09:45:00+08:00", user: str = "alice"):
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("DUBAN_", "SUDO_", "NOTIFY_", "WATCHDOG_"))
    }
    env.update({"DUBAN_FAKE_NOW": now, "SUDO_USER": user, "COLUMNS": "200", "LANG": "C.UTF-8"})
    return subprocess.run(
        [DUBAN, "--config", str(root / "config.toml"), *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


@pytest.fixture
def listing(capsys, monkeypatch):
    """``duban outbox … --json`` in this process (``orchestrator.cli.main``): the rows as dicts."""

    def read(root: Path, *args: str) -> list[dict]:
        monkeypatch.setenv("DUBAN_FAKE_NOW", "2026-06-10T09:45:00+08:00")
        capsys.readouterr()
        code = main(["--config", str(root / "config.toml"), "outbox", *args, "--json"])
        out, err = capsys.readouterr()
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]

    return read


def database_rows(root: Path, sql: str) -> list[tuple]:
    connection = sqlite3.connect(f"file:{root / 'duban.db'}?mode=ro", uri=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def test_outbox_lists_every_message_with_recipients_attempts_and_errors(golden, listing):
    rows = listing(golden)
    assert all(list(r) == OUTBOX_FIELDS for r in rows)
    assert {r["recipient"]: r["state"] for r in rows} == {
        "office": "sent",
        "town-00": "sent",
        "town-01": "failed",
        "town-02": "failed",
    }
    failed = next(r for r in rows if r["recipient"] == "town-01")
    assert (failed["kind"], failed["recipient_name"]) == ("digest", "第1镇人民政府")
    assert failed["to"] == ["town01@example.gov.cn"]
    assert failed["attempts"] == 1 and "550" in failed["last_error"]
    assert failed["sent_at"] is None and failed["next_attempt_at"] is None
    assert failed["subject"].startswith("【督办")
    sent = next(r for r in rows if r["recipient"] == "town-00")
    assert sent["sent_at"] == "2026-06-10T09:30:00+08:00" and sent["last_error"] is None
    assert [r["recipient"] for r in listing(golden, "--state", "failed")] == ["town-01", "town-02"]
    assert [r["recipient"] for r in listing(golden, "--state", "sent")] == ["office", "town-00"]
    assert listing(golden, "--state", "pending") == []


def test_outbox_table_reads_well_with_unit_names_errors_and_totals(golden):
    result = duban(golden, "outbox")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    failed = next(line for line in lines if "第1镇人民政府" in line)
    assert "发送失败" in failed and "550" in failed
    sent = next(line for line in lines if "第0镇人民政府" in line)
    assert "已发送" in sent and "2026-06-10 09:30 → town00@example.gov.cn" in sent
    assert "显示 4 封；全部 4 封：待发送 0 · 发送中 0 · 已发送 2 · 发送失败 2" in result.stdout
    only_failed = duban(golden, "outbox", "--state", "failed").stdout
    assert "显示 2 封（发送失败）" in only_failed and "第0镇人民政府" not in only_failed


def test_retry_of_a_message_that_did_not_fail_is_refused_and_changes_nothing(site, listing):
    before = (site / "duban.db").read_bytes()
    sent_id = next(r["id"] for r in listing(site) if r["state"] == "sent")
    cases = {
        ("retry", str(sent_id)): f"outbox message #{sent_id} is sent: only a failed message can be retried",
        ("retry", "99"): "no outbox message #99 (`duban outbox` lists them)",
        (
            "retry",
            "1",
            "--all-failed",
        ): "outbox retry：请给出一个邮件编号，或用 --all-failed 重发全部发送失败的邮件",
    }
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = pool.map(lambda args: duban(site, "outbox", *args), cases)
    for message, result in zip(cases.values(), results, strict=True):
        assert (result.returncode, result.stdout) == (2, ""), result.stderr
        assert result.stderr.splitlines() == [f"duban: {message}"]
    assert (site / "duban.db").read_bytes() == before


def test_retry_puts_failed_messages_back_and_the_daemon_delivers_them(site, server, listing):
    rows = {r["recipient"]: r for r in listing(site)}
    first, second = rows["town-01"], rows["town-02"]
    server.rcpt_reply.clear()  # the addresses exist now

    one = duban(site, "outbox", "retry", f"#{first['id']}", user="alice")
    assert one.returncode == 0, one.stderr
    assert one.stdout.strip() == f"1 封邮件重新排队发送：#{first['id']}"
    after = {r["recipient"]: r for r in listing(site)}
    assert (after["town-01"]["state"], after["town-01"]["attempts"]) == ("pending", 1)
    assert after["town-01"]["next_attempt_at"].startswith("2026-06-10T09:45")
    assert after["town-02"]["state"] == "failed"

    rest = duban(site, "outbox", "retry", "--all-failed", user="bob")
    assert rest.returncode == 0, rest.stderr
    assert rest.stdout.strip() == f"1 封邮件重新排队发送：#{second['id']}"
    assert duban(site, "outbox", "retry", "--all-failed").stdout.strip() == "没有发送失败的邮件，无需重发"
    events = database_rows(site, "SELECT actor, subject, unit FROM event WHERE kind = 'mail.retry_requested'")
    assert events == [("alice", first["message_id"], "town-01"), ("bob", second["message_id"], "town-02")]

    received = len(server.received)
    again = duban(site, "run", "--once", now="2026-06-10T10:00:00+08:00")
    assert again.returncode == 0, again.stderr
    delivered = server.received[received:]
    assert sorted(r for m in delivered for r in m.rcpt_tos) == [
        "town01@example.gov.cn",
        "town02@example.gov.cn",
    ]
    message_ids = {message_from_bytes(m.data, policy=default_policy)["Message-ID"] for m in delivered}
    assert message_ids == {first["message_id"], second["message_id"]}  # the same messages, not new ones
    final = {r["recipient"]: r for r in listing(site)}
    assert {u: (r["state"], r["attempts"]) for u, r in final.items()} == {
        "office": ("sent", 1),
        "town-00": ("sent", 1),
        "town-01": ("sent", 2),
        "town-02": ("sent", 2),
    }
