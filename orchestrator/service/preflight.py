"""``duban check``: the configuration itself, before it goes wrong.

What ``validate`` cannot see in the files alone: whether the service user can read the links'
signing key and the SMTP password and write where duban writes; whether the emails' links point
somewhere a unit can open; whether the office signs its emails; what is left of the shipped
examples (``example.gov.cn``, ``XX``; preflight_examples.py); whether the working-day calendar
knows the programs' years. Each is a ``Finding``, one line ``FILE:LINE: message`` (the line of
the key in config.toml, found with the file's ``SourceMap``). ``probe_smtp`` logs in to the SMTP
server (EHLO, STARTTLS, AUTH) and sends nothing.

The checks read permissions as the user running them: run ``duban check`` as the service user.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path, PurePath
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from orchestrator.engine.window import local_day
from orchestrator.service.config import Settings
from orchestrator.service.findings import Finding, Locator
from orchestrator.service.preflight_examples import example_findings
from workflows.errors import DubanError

READ_ONLY_FOR_THE_SERVICE = ("/etc", "/usr", "/boot", "/opt")  # under ProtectSystem=strict
NEXT_YEAR_DUE = (12, 15)  # from this day the next year's official schedule has been out for weeks


def check_config(settings: Settings, now: datetime) -> list[Finding]:
    """Every finding of the configuration (no network), sorted by file and line."""
    at = Locator(settings)
    findings = [
        *_as_whom(),
        *_web(settings, at),
        *_mail(settings, at),
        *_database(settings, at),
        *example_findings(settings, at),
        *_calendars(settings, now, at),
    ]
    if not settings.programs:
        findings.append(at.warning(("programs",), "programs", "没有 [[programs]]：守护进程不会启动任何方案"))
    return sorted(findings)


def _as_whom() -> Iterator[Finding]:
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        yield Finding(
            "",
            0,
            "以 root 运行：root 能读写，不等于服务用户能读写。请以服务用户运行："
            "sudo -u duban /opt/duban/.venv/bin/duban --config /etc/duban/config.toml check",
            "user",
            "warning",
        )


# -- [web] -----------------------------------------------------------------------------------------


def is_loopback(host: str | None) -> bool:
    """``localhost``, ``127.x.y.z``, ``::1``, ``0.0.0.0``: an address no unit's computer reaches."""
    if not host:
        return True
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _web(settings: Settings, at: Locator) -> Iterator[Finding]:
    web = settings.web
    yield from _writable(
        web.evidence_dir, at, ("web", "evidence_dir"), "web.evidence_dir", "[web] evidence_dir"
    )
    if not web.links:  # (the portal may still run: `duban unit link`)
        return
    try:
        web.secret()
    except DubanError as exc:
        yield at.problem(
            ("web", "secret_file"),
            "web.key",
            f"[web] 读不到链接的签名密钥（{exc}）：邮件将不带单位的链接，守护进程拒绝启动。"
            "密钥写入 /etc/duban/credentials/web-secret（root:duban，0640，见 docs/deploy.md），"
            "或设 [web] links = false",
        )
    smtp = settings.mail.transport == "smtp"
    host = urlsplit(web.base_url).hostname
    if smtp and not web.base_url_given:
        yield at.problem(
            ("web",),
            "web.base_url",
            f"没有写 [web] base_url：邮件中的链接将指向本机 {web.base_url}，单位打不开。"
            "写门户的对外地址，如 https://duban.本县域名",
        )
    elif smtp and is_loopback(host):
        yield at.problem(
            ("web", "base_url"),
            "web.base_url",
            f'[web] base_url = "{web.base_url}" 是本机地址：邮件经 SMTP 发出，单位的电脑打不开这个链接。'
            "写门户的对外地址，如 https://duban.本县域名",
        )
    if web.base_url_given and urlsplit(web.base_url).scheme == "http" and not is_loopback(host):
        yield at.warning(
            ("web", "base_url"),
            "web.base_url",
            "[web] base_url 用的是 http：链接就是单位的凭据，会明文传输。用 https（nginx 在前，见 docs/deploy.md）",
        )
    if not web.office_emails:
        yield at.warning(
            ("web", "office_emails"),
            "web.office_emails",
            "[web] office_emails 为空：督办办公室无法从 /office 页面登录（只能用 duban web login-link）",
        )


# -- [mail] ----------------------------------------------------------------------------------------


def _mail(settings: Settings, at: Locator) -> Iterator[Finding]:
    mail = settings.mail
    if mail.signature is None:
        yield at.problem(
            ("mail",),
            "mail.signature",
            "没有 [mail.signature]：督办邮件没有落款。加上 name（发文单位），可加 phone、address",
        )
    if mail.transport == "maildir":
        yield at.warning(
            ("mail", "transport"),
            "mail.transport",
            f'[mail] transport = "maildir"：邮件只写成文件（{mail.maildir}/new），不会发出',
        )
        yield from _writable(mail.maildir, at, ("mail", "maildir"), "mail.maildir", "[mail] maildir")
        return
    smtp = mail.smtp
    try:
        password = smtp.password()
    except DubanError as exc:
        yield at.problem(("mail", "smtp", "password_file"), "mail.smtp.password", f"读不到 SMTP 密码：{exc}")
    else:
        if smtp.username and not password:
            yield at.problem(
                ("mail", "smtp", "username"),
                "mail.smtp.password",
                f'[mail.smtp] username = "{smtp.username}"，但找不到 SMTP 密码：'
                "写入 /etc/duban/credentials/smtp-password（root:duban，0640），或设 password_file / password_env",
            )
    if smtp.ca_file is not None and not os.access(smtp.ca_file, os.R_OK):
        yield at.problem(
            ("mail", "smtp", "ca_file"), "mail.smtp.ca_file", f"[mail.smtp] ca_file {smtp.ca_file} 读不到"
        )
    if smtp.security == "none" and not is_loopback(smtp.host):
        yield at.warning(
            ("mail", "smtp", "security"),
            "mail.smtp.security",
            f'[mail.smtp] security = "none"：到 {smtp.host} 的邮件（含单位的链接）和密码都是明文。用 "starttls" 或 "tls"',
        )
    if not smtp.verify:
        yield at.warning(
            ("mail", "smtp", "verify"),
            "mail.smtp.verify",
            "[mail.smtp] verify = false：不核验服务器证书。私有 CA 请用 ca_file",
        )


# -- where duban writes --------------------------------------------------------------------------


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///…`` URL, else None (PostgreSQL, ``:memory:``)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or ":memory:" in url:
        return None
    return Path(url[len(prefix) :].split("?", 1)[0])


def _database(settings: Settings, at: Locator) -> Iterator[Finding]:
    path = sqlite_path(settings.database.url)
    if path is None:
        return
    loc = ("database", "url")
    yield from _writable(path.parent, at, loc, "database.url", "[database] url 的目录")
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        yield at.problem(loc, "database.url", f"数据库文件 {path} 不可读写（以服务用户运行 duban check）")


def _writable(path: Path, at: Locator, loc: tuple, check: str, what: str) -> Iterator[Finding]:
    """A folder duban writes to (or creates): writable by this user, and not read-only under systemd."""
    top = next((t for t in READ_ONLY_FOR_THE_SERVICE if PurePath(path).is_relative_to(t)), None)
    if top is not None:
        yield at.problem(
            loc,
            check,
            f"{what} {path} 在 {top} 下：systemd 单元（ProtectSystem=strict）只能写 /var/lib/duban，"
            "请改到 /var/lib/duban 下",
        )
        return
    existing = _nearest_existing(Path(path))
    if not existing.is_dir():
        yield at.problem(loc, check, f"{what} {path}：{existing} 不是目录")
    elif not os.access(existing, os.W_OK | os.X_OK):
        yield at.problem(loc, check, f"{what} {path}：{existing} 不可写（以服务用户运行 duban check）")


def _nearest_existing(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists (or that this user cannot look into)."""
    while path != path.parent:
        try:
            path.stat()
        except (FileNotFoundError, NotADirectoryError):
            path = path.parent
            continue
        except OSError:
            return path.parent  # (not searchable: its parent's permissions say why)
        return path
    return path


# -- the working-day calendar --------------------------------------------------------------------


def _calendars(settings: Settings, now: datetime, at: Locator) -> Iterator[Finding]:
    """A program's own year without an official schedule is a problem; the next year's is a warning
    until 15 December (the State Council publishes it in October–December), then a problem."""
    from orchestrator.service.runtime import load_bundle_for, program_year

    written = ("definitions", "calendar_overrides")
    for i, entry in enumerate(settings.programs):
        try:
            bundle = load_bundle_for(settings, entry.workflow, on_assumed=lambda *_: None)
        except DubanError:
            continue  # (the files' own problems are validate's findings)
        today = local_day(now, ZoneInfo(bundle.definition.workflow.timezone))
        year = program_year(entry, today)
        loc = written if at.has(written) else ("programs", i)
        for touched in (year, year + 1):
            if bundle.calendar.has_official_data(touched):
                continue
            due = touched == year or today >= date(touched - 1, *NEXT_YEAR_DUE)
            yield Finding(
                *at.where(loc),
                f"{entry.workflow} {year}：{touched} 年没有官方放假安排（chinese-calendar 没有，日历覆盖文件里也没有 "
                f"[{touched}]）：{touched} 年的日期只按法定节假日计算，调休上班日未知。国务院办公厅的通知公布后，"
                "写入 calendar-overrides.toml 并在 [definitions] calendar_overrides 指向它（见 docs/deploy.md）"
                + ("" if due else f"；{touched - 1} 年 12 月 15 日起算作问题"),
                "calendar",
                "problem" if due else "warning",
            )


# -- --connect -----------------------------------------------------------------------------------


async def probe_smtp(settings: Settings, at: Locator) -> Finding | None:
    """Connect, EHLO, STARTTLS (or TLS), AUTH, QUIT: no message is sent. A finding if any step fails."""
    from notifications.errors import TransportError
    from orchestrator.service.runtime import make_transport

    loc = ("mail", "smtp", "host")
    try:
        transport = make_transport(settings)
    except DubanError as exc:
        return at.problem(loc, "smtp.connect", f"SMTP 连接检查没有进行：{exc}")
    try:
        await transport.open()
    except TransportError as exc:
        return at.problem(loc, "smtp.connect", f"SMTP 连接检查失败：{exc}")
    finally:
        await transport.close()
    return None
