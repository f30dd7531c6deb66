"""Issue 26, point 16: a program started by hand but not in config's ``[[programs]]``.

The rule (docs/operations.md, "The programs the daemon runs"): the daemon runs the programs ``[[programs]]``
declares, by workflow, any year. One started with ``duban start`` and not declared is not run: its
timers wait, nothing is queued or sent for it, ``duban start`` warns, ``duban status`` says so, the
daemon names it at every start. Declaring it later runs it, caught up as after downtime. Before,
it was ticked and its 34 digests all failed with "unit 'X' has no email address".

Real ``duban`` processes on a real SQLite file (``duban_env``: config declares ``daemon-test``).
"""

from __future__ import annotations

import json

from support import TEST_DEFINITION


def test_a_program_not_in_config_is_not_run_and_status_says_so_until_it_is_declared(duban_env):
    env = duban_env
    (env.root / "definitions" / "other.toml").write_text(
        TEST_DEFINITION.replace('id = "daemon-test"', 'id = "other-plan"'), encoding="utf-8"
    )
    started = env.cli("start", "other-plan", "--year", "2026")
    assert started.returncode == 0, started.stderr
    assert started.stderr.strip() == (
        "duban: 警告：方案 other-plan 不在配置文件的 [[programs]] 中：守护进程不处理它（定时器不触发，不发任何通知），"
        '直到在 [[programs]] 中加入 workflow = "other-plan"'
    )

    ran = env.cli("run", "--once")
    assert ran.returncode == 0, ran.stderr
    assert '"program.not_run"' in ran.stdout and "other-plan" in ran.stdout
    other = env.scalar("SELECT id FROM program WHERE workflow = 'other-plan'")
    assert (
        env.scalar("SELECT count(*) FROM timer WHERE program_id = :p AND fired_at IS NOT NULL", p=other) == 0
    )
    assert env.scalar("SELECT count(*) FROM notification_item WHERE program_id = :p", p=other) == 0
    assert env.scalar("SELECT count(*) FROM outbox_message WHERE state = 'failed'") == 0
    sent = env.scalar("SELECT count(*) FROM outbox_message WHERE state = 'sent'")
    assert sent == 4  # daemon-test's four digests, as ever

    status = env.cli("status", env=env.base_env(COLUMNS="300"))
    assert "未运行：方案 other-plan 不在配置文件的 [[programs]] 中，守护进程不处理它" in status.stdout
    assert "未运行：方案 daemon-test" not in status.stdout
    report = json.loads(env.cli("status", "--json").stdout)
    assert {p["workflow"]: p["run"] for p in report["programs"]} == {"daemon-test": True, "other-plan": False}

    env.config_path.write_text(
        env.config_path.read_text(encoding="utf-8")
        + '\n[[programs]]\nworkflow = "other-plan"\nyear = 2026\n',
        encoding="utf-8",
    )
    again = env.cli("run", "--once")
    assert again.returncode == 0, again.stderr
    assert env.scalar("SELECT count(*) FROM outbox_message WHERE state = 'failed'") == 0
    assert env.scalar("SELECT count(*) FROM outbox_message WHERE state = 'sent'") == 8  # its four too
    assert '"program.not_run"' not in again.stdout
