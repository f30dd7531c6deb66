"""``duban check``: the configuration itself, before it goes wrong (service/preflight.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from orchestrator.cli.common import console, current, err_console, now, print_json_lines
from orchestrator.cli.options import flag, json_flag

if TYPE_CHECKING:
    from orchestrator.service.config import Settings
    from orchestrator.service.findings import Finding

EXIT_CODES = (
    "Exit codes: 0 no problem (warnings may be shown) · 1 problems found, one line each · 2 bad usage."
)


def check(
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        metavar="FILE",
        help="config.toml (default: duban's --config).",
        show_default=False,
    ),
    connect: bool = flag(
        "--connect", "Also log in to the SMTP server (EHLO, STARTTLS, AUTH); no email is sent."
    ),
    as_json: bool = json_flag("One JSON object per finding: file, line, message, check, severity."),
) -> None:
    r"""Check the configuration before it goes wrong: one line per problem, FILE:LINE: message.

    Beyond [bold]validate[/] (the plans, units and registers, checked too): the links' signing key
    readable and \[web] evidence_dir writable by the user running it (run it as the service user),
    \[web] base_url reachable from the units (not this machine) when mail goes out by SMTP, the SMTP
    password found, \[mail.signature] present, what is left of the examples (example.gov.cn, XX),
    and the working-day calendar of the programs' years (the next year's is a warning until
    15 December). With --connect, a real SMTP login.

    Example: [bold]sudo -u duban /opt/duban/.venv/bin/duban --config /etc/duban/config.toml check --connect[/]
    """
    from orchestrator.service.config import ConfigError
    from orchestrator.service.findings import Finding

    ctx = current()
    if config is not None:
        ctx.config_path, ctx._settings = config, None
    try:
        settings = ctx.settings
    except ConfigError as exc:  # a config that does not load: the check's first finding
        _report([Finding.of(p, "config") for p in exc.problems], as_json)
        raise typer.Exit(1) from None
    findings = [*_file_findings(), *_config_findings(settings)]
    connected = connect and settings.mail.transport == "smtp"
    if connected:
        findings += _connect(settings)
    _report(findings, as_json)
    if any(f.problem for f in findings):
        raise typer.Exit(1)
    if not as_json:
        console.print(_summary(settings, findings, connected), markup=False)


def _file_findings() -> list[Finding]:
    """What ``validate`` says of the configured files."""
    from orchestrator.cli.planning import check_with_robots, configured_inputs
    from orchestrator.service.findings import Finding

    inputs = configured_inputs()
    report = check_with_robots(inputs)
    problems = [Finding.of(p, "files") for p in report.problems]
    return problems + [Finding.of(w, "files", "warning") for w in report.warnings]


def _config_findings(settings: Settings) -> list[Finding]:
    from orchestrator.service.preflight import check_config

    return check_config(settings, now())


def _connect(settings: Settings) -> list[Finding]:
    import asyncio

    from orchestrator.service.findings import Locator
    from orchestrator.service.preflight import probe_smtp

    found = asyncio.run(probe_smtp(settings, Locator(settings)))
    return [] if found is None else [found]


def _report(findings: list[Finding], as_json: bool) -> None:
    if as_json:
        print_json_lines(f.as_json() for f in findings)
        return
    for finding in findings:
        err_console.print(str(finding), markup=False, highlight=False, soft_wrap=True)


def _summary(settings: Settings, findings: list[Finding], connected: bool) -> str:
    mail, web = settings.mail, settings.web
    if mail.transport == "smtp":
        sent = f"SMTP {mail.smtp.host}:{mail.smtp.port}" + ("（已登录，未发送邮件）" if connected else "")
    else:
        sent = f"写入 {mail.maildir}"
    links = f"链接 {web.base_url}" if web.links else "邮件不带链接"
    warnings = sum(not f.problem for f in findings)
    tail = f"；{warnings} 个提醒" if warnings else ""
    return f"ok: {settings.path or '默认配置'}：邮件 {sent}；{links}{tail}"


def register(app: typer.Typer) -> None:
    app.command("check", epilog=EXIT_CODES)(check)
