"""``duban check``: the configuration itself, one located line per problem, exit 1 — before it goes
wrong. Run on the shipped production config installed under a temporary root (deploy_support)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from deploy_support import DOMAIN, SMTP_LOGIN, Deployment, install, line_of, located, run_cli, use_smtp_server
from smtp_server import SmtpServer, self_signed_cert, server_tls_context

PASSWORD = "s3cret-password"


def problems(stderr: str) -> list[tuple[str, int, str]]:
    """The located problem lines (not the warnings)."""
    return [found for found in located(stderr) if not found[2].startswith("warning: ")]


def check(site: Deployment, *args: str, now: str | None = None, **env: str) -> tuple[int, str, str]:
    return run_cli("--config", str(site.config), "check", *args, **({"now": now} if now else {}), env=env)


def test_the_shipped_config_names_every_leftover_of_the_examples_and_the_missing_secrets(tmp_path):
    site = install(tmp_path, filled=False, smtp_password=None)
    (site.credentials / "web-secret").unlink()
    code, out, err = check(site)
    assert code == 1 and out == ""
    lines = located(err)
    config = site.config
    in_config = {(line, message.split(" = ", 1)[0]) for name, line, message in lines if name == "config.toml"}
    for key, text in [
        ("[mail] sender", 'sender = "XX县'),
        ("[mail] reply_to", "reply_to = "),
        ("[mail] admin", "admin = "),
        ("[mail] domain", 'domain = "duban.example'),
        ("[mail.signature] name", 'name = "XX'),
        ("[mail.signature] phone", 'phone = "XX'),
        ("[mail.signature] address", 'address = "XX'),
        ("[mail.smtp] host", 'host = "smtp.example'),
        ("[mail.smtp] username", 'username = "duban@example'),
        ("[web] base_url", 'base_url = "https://duban.example'),
        ("[web] office_emails", "office_emails = ["),
    ]:
        assert (line_of(config, text), key) in in_config, key
    messages = "\n".join(message for _, _, message in lines)
    assert "读不到链接的签名密钥" in messages and "web-secret" in messages  # the links' key
    assert "找不到 SMTP 密码" in messages  # username without a password
    units = [(line, message) for name, line, message in lines if name == "units.toml"]
    assert len(units) == 13  # every example address of the 12 units, at its line
    assert (
        line_of(site.etc / "units.toml", "xipingzhen@"),
        "单位 xiping-town（西坪镇人民政府）的 emails",
    ) in {(line, message.split(" = ")[0]) for line, message in units}
    assert "Traceback" not in err


def test_a_filled_in_deployment_is_green_with_the_next_years_calendar_as_a_warning(tmp_path):
    site = install(tmp_path)
    code, out, err = check(site)  # 2026-06-10: 2027's schedule is not out yet
    assert code == 0, err
    assert out.startswith(f"ok: {site.config}：邮件 SMTP smtp.{DOMAIN}:587；链接 https://duban.{DOMAIN}")
    (warning,) = located(err)
    assert warning[:2] == ("config.toml", line_of(site.config, "[[programs]]"))
    assert ("duban: warning: 以 root 运行" in err) == (os.geteuid() == 0)  # permissions as whom
    assert run_cli("check", "--config", str(site.config))[0] == 0  # (--config after the command, too)
    assert warning[2].startswith("warning: rule-of-law-pilot 2026：2027 年没有官方放假安排")


def test_from_15_december_next_years_calendar_is_a_problem_until_the_override_file_has_it(tmp_path):
    site = install(tmp_path)
    code, _, err = check(site, now="2026-12-14T23:00:00+08:00")
    assert code == 0 and "warning: rule-of-law-pilot 2026：2027 年" in err
    code, _, err = check(site, now="2026-12-15T09:00:00+08:00")
    assert code == 1
    ((name, line, message),) = located(err)
    assert (name, line) == ("config.toml", line_of(site.config, "[[programs]]"))
    assert (
        message.startswith("rule-of-law-pilot 2026：2027 年没有官方放假安排")
        and "calendar_overrides" in message
    )

    (site.etc / "calendar-overrides.toml").write_text(
        '[2027]\nholidays = ["2027-01-01", "2027-10-01..2027-10-07"]\nworkdays = ["2027-10-09"]\n',
        encoding="utf-8",
    )
    site.edit(
        '# calendar_overrides = "calendar-overrides.toml"', 'calendar_overrides = "calendar-overrides.toml"'
    )
    code, out, err = check(site, now="2026-12-15T09:00:00+08:00")
    assert (code, located(err)) == (0, []) and out.startswith("ok: ")


def test_links_to_this_machine_no_signature_and_paths_the_service_cannot_write(tmp_path):
    site = install(tmp_path)
    site.edit(f'base_url = "https://duban.{DOMAIN}"', 'base_url = "http://127.0.0.1:8080"')
    signature = site.config.read_text(encoding="utf-8").split("[mail.signature]")[1].split("[mail.smtp]")[0]
    site.edit("[mail.signature]" + signature, "")
    site.edit(f'evidence_dir = "{site.state}/evidence"', 'evidence_dir = "/etc/duban/evidence"')
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    site.edit(f'url = "sqlite:///{site.state}/duban.db"', f'url = "sqlite:///{tmp_path}/a-file/duban.db"')
    code, _, err = check(site)
    assert code == 1
    found = {(line, message.split("：")[0]) for _, line, message in located(err)}
    config = site.config
    assert (line_of(config, "base_url = "), '[web] base_url = "http://127.0.0.1:8080" 是本机地址') in found
    assert (line_of(config, "[mail]"), "没有 [mail.signature]") in found
    assert (line_of(config, "evidence_dir = "), "[web] evidence_dir /etc/duban/evidence 在 /etc 下") in found
    assert (line_of(config, "url = "), f"[database] url 的目录 {tmp_path}/a-file") in found

    # no base_url at all: the links would point to this machine too
    site.edit('base_url = "http://127.0.0.1:8080"', "")
    _, _, err = check(site)
    assert (line_of(config, "[web]"), "没有写 [web] base_url") in {
        (line, message.split("：")[0]) for _, line, message in located(err)
    }


def test_an_unreadable_or_short_key_and_links_false(tmp_path):
    site = install(tmp_path)
    (site.credentials / "web-secret").write_text("too-short\n", encoding="utf-8")
    code, _, err = check(site)
    assert code == 1 and "the signing key is too short" in err and "too-short" not in err
    (site.credentials / "web-secret").unlink()
    (site.credentials / "web-secret").mkdir()  # (as root, a mode cannot make it unreadable)
    code, _, err = check(site)
    ((_, line, message),) = problems(err)
    assert code == 1 and "Is a directory" in message and line == line_of(site.config, "[web]")
    site.edit("# links = false", "links = false")
    assert check(site)[0] == 0


def test_json_lists_each_finding_with_its_check_and_severity(tmp_path):
    site = install(tmp_path)
    site.edit('name = "县司法局"', 'name = "XX县司法局"', path=site.etc / "units.toml")
    code, out, err = check(site, "--json")
    assert code == 1 and err == ""
    rows = [json.loads(line) for line in out.splitlines()]
    assert all(set(r) == {"file", "line", "message", "check", "severity"} for r in rows)
    found = {
        (Path(r["file"]).name if r["file"] else None, r["line"], r["check"], r["severity"]) for r in rows
    }
    assert ("units.toml", line_of(site.etc / "units.toml", "XX县司法局"), "examples", "problem") in found
    assert ("config.toml", line_of(site.config, "[[programs]]"), "calendar", "warning") in found


def test_a_broken_config_is_one_located_line_and_bad_usage_exits_2(tmp_path):
    site = install(tmp_path)
    site.edit('transport = "smtp"', 'transport = "smtp', count=1)
    code, out, err = check(site)
    assert code == 1 and out == ""
    ((name, line, _),) = located(err)
    assert (name, line) == ("config.toml", line_of(site.config, 'transport = "smtp'))
    assert run_cli("check", "--bogus")[0] == 2


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("password, ok", [(PASSWORD, True), ("wrong", False)])
def test_connect_logs_in_with_starttls_and_sends_nothing(tmp_path, tls_files, password, ok):
    cert, key = tls_files
    with SmtpServer(
        tls_context=server_tls_context(cert, key), require_starttls=True, credentials={SMTP_LOGIN: PASSWORD}
    ) as server:
        site = install(tmp_path, smtp_password=password)
        use_smtp_server(site, server, cert)
        code, out, err = check(site, "--connect")
        assert server.auth_attempts and {login for _, login in server.auth_attempts} == {SMTP_LOGIN}
        assert server.received == []  # a login, never a message
    assert password not in out + err
    if ok:
        assert code == 0 and f"SMTP {server.host}:{server.port}（已登录，未发送邮件）" in out
        return
    assert code == 1
    ((name, line, message),) = problems(err)
    assert (name, line) == ("config.toml", line_of(site.config, "host = "))
    assert message.startswith("SMTP 连接检查失败：") and "535" in message


def test_a_default_left_from_the_examples_is_named_at_its_table(tmp_path):
    site = install(tmp_path)
    site.edit(f'sender = "安县推进依法行政工作领导小组办公室 <duban@{DOMAIN}>"\n', "")
    code, _, err = check(site)
    assert code == 1
    ((name, line, message),) = problems(err)
    assert (name, line) == ("config.toml", line_of(site.config, "[mail]"))
    assert message.startswith(
        '[mail] sender（未写，默认值） = "督办系统 <duban@example.gov.cn>" 是示例域名 example.gov.cn'
    )
