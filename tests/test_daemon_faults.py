"""The daemon as a real subprocess under faults: one lock per SQLite file whatever its path, and
``run --once`` exit codes that say what happened (and are the ones it logs)."""

from __future__ import annotations

import os
import subprocess

import pytest
from smtp_server import refused_port
from support import DUBAN


def run_once(env, config) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DUBAN, "--config", str(config), "run", "--once"],
        env=env.base_env(),
        cwd=env.root,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )


def stopped_code(result: subprocess.CompletedProcess) -> int | None:
    import json

    for line in result.stdout.splitlines():
        body = line[3:] if line.startswith("<") else line
        if '"daemon.stopped"' in body:
            return json.loads(body)["exit_code"]
    return None


@pytest.mark.parametrize("link", ["symlink", "hardlink", "dotdot"])
def test_any_path_to_the_same_sqlite_file_finds_the_same_lock(duban_env, link):
    first = duban_env.start()
    first.wait_for_event("daemon.ready")
    other = duban_env.root / "elsewhere"
    other.mkdir()
    if link == "symlink":
        path = other / "link.db"
        path.symlink_to(duban_env.database)
    elif link == "hardlink":
        path = other / "hard.db"
        os.link(duban_env.database, path)
    else:
        path = other / ".." / duban_env.database.name
    config = other / "config.toml"
    config.write_text(
        duban_env.config_path.read_text(encoding="utf-8")
        .replace(str(duban_env.database), str(path))
        .replace('"definitions"', f'"{duban_env.root / "definitions"}"')
        .replace('"units.toml"', f'"{duban_env.units}"'),
        encoding="utf-8",
    )
    second = run_once(duban_env, config)
    assert second.returncode == 1, second.stdout + second.stderr
    assert "another duban daemon" in second.stderr and "Traceback" not in second.stderr
    assert stopped_code(second) in (None, 1)  # if it logs its stop, it logs the code it exits with
    assert first.proc.poll() is None
    assert first.stop() == 0


def test_a_run_once_refused_by_the_lock_logs_the_exit_code_it_exits_with(duban_env):
    first = duban_env.start()
    first.wait_for_event("daemon.ready")
    refused = run_once(duban_env, duban_env.config_path)
    assert refused.returncode == 1
    assert stopped_code(refused) == 1
    assert first.stop() == 0


def test_run_once_exits_1_when_every_delivery_failed(make_duban_env):
    with refused_port() as port:  # nobody listens: "cannot connect"
        env = make_duban_env(
            mail=f'transport = "smtp"\n\n[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 2\n'
        )
        result = env.cli("run", "--once")
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr
    assert stopped_code(result) == 1
    assert env.scalar("SELECT count(*) FROM outbox_message WHERE state = 'pending' AND attempts = 1") > 0
    assert env.scalar("SELECT count(*) FROM outbox_message WHERE state = 'sent'") == 0
