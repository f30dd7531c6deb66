"""Group robots as an operator meets them: the robots file and ``validate``, the real daemon
(``duban run --once``) posting to the fake robot platform, and ``duban outbox`` / ``duban status``
showing both channels. No secret on any output, in any log line, in the database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from robot_server import FakeRobots, RobotServer
from support import DubanEnv, town_units

from orchestrator.service.config import load_settings
from orchestrator.service.robots import load_robots
from orchestrator.service.runtime import secrets_of
from workflows.errors import DefinitionError

WECOM_KEY = "5f1c2e3d-4b5a-6978-8a9b-0c1d2e3f4a5b"
TOKEN = "b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8"
SECRET = "SECf0e1d2c3b4a5968778695a4b3c2d1e0f0e1d2c3b4a5968778695a4b3c2d1e0"
SECRETS = (WECOM_KEY, TOKEN, SECRET)

ROBOTS = f"""\
# the deployment's group robots (mode 0600)
[robots.town0-wecom]
kind = "wecom"
key = "{WECOM_KEY}"

[robots.county-dingtalk]
kind = "dingtalk"
access_token = "{TOKEN}"
secret = "{SECRET}"
"""


def with_robots(units: str) -> str:
    """The towns 第0镇 and 第1镇 name robots (the county group gets both)."""
    units = units.replace(
        'emails = ["town00@example.gov.cn"]\nroles = ["town"]\n',
        'emails = ["town00@example.gov.cn"]\nroles = ["town"]\nrobots = ["town0-wecom", "county-dingtalk"]\n',
    )
    return units.replace(
        'emails = ["town01@example.gov.cn"]\nroles = ["town"]\n',
        'emails = ["town01@example.gov.cn"]\nroles = ["town"]\nrobots = ["county-dingtalk"]\n',
    )


@pytest.fixture
def platform() -> Iterator[RobotServer]:
    robots = FakeRobots(wecom={WECOM_KEY: "town0-wecom"}, dingtalk={TOKEN: ("county-dingtalk", SECRET)})
    with RobotServer(robots) as server:
        yield server


def deployment(root: Path, server: RobotServer | None = None, *, mode: int = 0o600) -> DubanEnv:
    urls = f'wecom_url = "{server.wecom_url}"\ndingtalk_url = "{server.dingtalk_url}"\n' if server else ""
    mail = f'transport = "maildir"\nmaildir = "mail"\n\n[im]\nrobots_file = "robots.toml"\n{urls}'
    env = DubanEnv(root, mail=mail)
    env.units.write_text(with_robots(town_units(3)), encoding="utf-8")
    robots = root / "robots.toml"
    robots.write_text(ROBOTS, encoding="utf-8")
    robots.chmod(mode)
    return env


def no_secret(*texts: str) -> None:
    for secret in SECRETS:
        for text in texts:
            assert secret not in text


def test_the_daemon_sends_each_digest_by_email_and_to_each_robot_and_the_cli_shows_both(short_tmp, platform):
    env = deployment(short_tmp / "deploy", platform)
    env.upgrade()
    done = env.cli("run", "--once")
    assert done.returncode == 0, done.stderr
    assert platform.robots.problems == []
    received = sorted((r.robot, r.text.splitlines()[0]) for r in platform.robots.received)
    assert received == [
        ("county-dingtalk", "### 【督办提醒】第0镇人民政府"),
        ("county-dingtalk", "### 【督办提醒】第1镇人民政府"),
        ("town0-wecom", "### 【督办提醒】第0镇人民政府"),
    ]
    assert len(list((env.maildir / "new").glob("*.eml"))) == 4  # the emails as ever

    listing = env.cli("outbox", "--json")
    assert listing.returncode == 0, listing.stderr
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert sorted(r["channel"] for r in rows) == [
        *["email"] * 4,
        "robot:county-dingtalk",
        "robot:county-dingtalk",
        "robot:town0-wecom",
    ]
    assert {r["state"] for r in rows} == {"sent"}
    table = env.cli("outbox", env=env.base_env(COLUMNS="200"))
    assert (
        "群机器人 county-dingtalk" in table.stdout
        and "其中群机器人消息 待发送 0 · 发送中 0 · 已发送 3" in table.stdout
    )
    status = env.cli("status", env=env.base_env(COLUMNS="200"))
    assert "邮件：待发送 0 · 发送中 0 · 已发送 4 · 发送失败 0" in status.stdout
    assert "群机器人：待发送 0 · 发送中 0 · 已发送 3 · 发送失败 0" in status.stdout
    report = json.loads(env.cli("status", "--json").stdout)
    assert report["outbox"]["channels"]["robot:county-dingtalk"]["sent"] == 2
    log = env.cli("log", "--json").stdout
    assert log.count('"robot.sent"') == 3 and log.count('"robot.queued"') == 3
    no_secret(done.stdout, done.stderr, listing.stdout, table.stdout, status.stdout, log)
    no_secret("\n".join(map(repr, env.rows("SELECT * FROM outbox_message"))))
    no_secret("\n".join(map(repr, env.rows("SELECT * FROM event"))))

    again = env.cli("run", "--once")
    assert again.returncode == 0 and len(platform.robots.received) == 3  # none twice


def test_validate_checks_robot_names_secrets_and_the_files_mode(short_tmp):
    env = deployment(short_tmp / "deploy")
    files = (str(env.definition), str(env.units))
    ok = env.cli("validate", *files)
    assert ok.returncode == 0, ok.stderr

    units = env.units.read_text(encoding="utf-8").replace('"county-dingtalk"]\n', '"county-dingtak"]\n', 1)
    env.units.write_text(units, encoding="utf-8")
    line = next(n for n, text in enumerate(units.splitlines(), 1) if "county-dingtak" in text)
    bad = env.cli("validate", *files)
    assert bad.returncode == 1  # the check failed
    assert (
        f'{env.units}:{line}: units[1].robots: unknown robot "county-dingtak": not in the robots file'
        in bad.stderr
    )
    assert "Traceback" not in bad.stderr

    (env.root / "robots.toml").chmod(0o644)
    loose = env.cli("validate", *files)
    assert loose.returncode == 1
    assert (
        f"{env.root / 'robots.toml'}:1: robots file has mode 0644" in loose.stderr
        and "chmod 600" in loose.stderr
    )
    no_secret(bad.stdout, bad.stderr, loose.stdout, loose.stderr)


def test_a_robot_without_its_secret_is_named_with_its_line(tmp_path):
    path = tmp_path / "robots.toml"
    path.write_text(
        f'[robots.a]\nkind = "wecom"\nkey = "{WECOM_KEY}"\n\n[robots.b]\nkind = "dingtalk"\naccess_token = "{TOKEN}"\n\n'
        '[robots.c]\nkind = "feishu"\n',
        encoding="utf-8",
    )
    path.chmod(0o600)
    with pytest.raises(DefinitionError) as caught:
        load_robots(path)
    shown = str(caught.value)
    assert 'robots.toml:10: robots.c.kind: expected "wecom" or "dingtalk", got "feishu"' in shown
    no_secret(shown)
    path.write_text(f'[robots.b]\nkind = "dingtalk"\naccess_token = "{TOKEN}"\n', encoding="utf-8")
    with pytest.raises(DefinitionError) as caught:
        load_robots(path)
    assert f"{path}:1: robots.b: dingtalk robot without secret" in str(caught.value)


def test_the_daemon_refuses_to_start_on_a_unit_naming_an_unknown_robot(short_tmp):
    env = deployment(short_tmp / "deploy")
    env.upgrade()
    (env.root / "robots.toml").write_text(
        '[robots.town0-wecom]\nkind = "wecom"\nkey = "k"\n', encoding="utf-8"
    )
    run = env.cli("run", "--once")
    # a bad input file: exit 2 (issue 12)
    assert run.returncode == 2 and 'unknown robot "county-dingtalk"' in run.stderr
    assert "Traceback" not in run.stderr


def test_under_systemd_the_robots_file_is_the_credential_and_its_secrets_are_redacted(tmp_path, monkeypatch):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "robots.toml").write_text(ROBOTS, encoding="utf-8")
    (credentials / "robots.toml").chmod(0o440)  # systemd's own; not the mode duban asks of its file
    config = tmp_path / "config.toml"
    config.write_text('[mail]\ntransport = "maildir"\n', encoding="utf-8")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    settings = load_settings(config)
    assert set(secrets_of(settings)) == set(SECRETS)


def test_the_example_robots_file_is_valid():
    example = Path(__file__).resolve().parent.parent / "examples" / "robots.example.toml"
    loaded = load_robots(example, check_mode=False)  # a shipped example: its mode is git's
    assert {r.kind for r in loaded.values()} == {"wecom", "dingtalk"}
