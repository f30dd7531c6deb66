"""``duban web``: the portal; ``duban web login-link EMAIL``: a one-time office login link;
``duban web sessions [--json] [--revoke EMAIL]``: the office's live sessions, and ending them."""

from __future__ import annotations

import typer
from sqlmodel import Session

from orchestrator.cli.common import (
    EXIT_CODES,
    BadInput,
    console,
    current,
    hhmm,
    now,
    open_engine,
    print_json_lines,
)

web_app = typer.Typer(
    help="The portal: units answer through their links, the office reviews.",
    invoke_without_command=True,
)


@web_app.callback()
def web(
    ctx: typer.Context,
    listen: str = typer.Option(None, "--listen", help="HOST:PORT (default: \\[web] listen)."),
) -> None:
    """Serve the portal (foreground; what duban-web.service starts).

    Example: [bold]duban web --listen 127.0.0.1:8080[/]
    """
    if ctx.invoked_subcommand is not None:
        return
    from orchestrator.service.logs import configure_daemon
    from orchestrator.service.runtime import plan_timezone
    from orchestrator.web.server import make_portal, serve, split_listen

    settings = current().settings
    address = listen or settings.web.listen
    try:
        split_listen(address)
    except ValueError:
        raise BadInput(f'--listen: bad address "{address}", expected HOST:PORT') from None
    portal = make_portal(settings)
    # the plan's zone, as the daemon's lines (`make run` shows both side by side)
    configure_daemon(secrets=[portal.key.decode("utf-8", "replace")], timezone=plan_timezone(settings))
    serve(portal, address)


@web_app.command("login-link")
def login_link(email: str = typer.Argument(..., help="An address listed in \\[web] office_emails.")) -> None:
    """Print a one-time office login link (good for 15 minutes, once).

    Example: [bold]duban web login-link fazhiban@example.gov.cn[/]
    """
    from orchestrator.admin import links

    web = current().settings.web
    wanted = email.strip().lower()
    if wanted not in {e.lower() for e in web.office_emails}:
        raise BadInput(
            f'"{email}" 不在 config.toml 的 [web] office_emails 中（只有其中的邮箱能登录督办办公室页面）'
        )
    key = web.secret()
    with Session(open_engine()) as session:
        token = links.make_office_login(key, wanted, session, now())
        session.commit()
    console.print(f"{web.base_url.rstrip('/')}/office/login/{token}", markup=False)


@web_app.command("sessions", epilog=EXIT_CODES)
def sessions(
    revoke: str = typer.Option(
        None,
        "--revoke",
        metavar="EMAIL",
        help="End every session of this address (and its unused login links).",
    ),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per live session.", metavar=""),
) -> None:
    """The office's live sessions (who, since when, until when, from where); --revoke ends them.

    Example: [bold]duban web sessions[/]  ·  [bold]duban web sessions --revoke fazhiban@example.gov.cn[/]
    """
    from orchestrator.admin import office_sessions
    from orchestrator.admin.submissions import Actor
    from orchestrator.store.db import transaction

    if revoke is not None:
        wanted = revoke.strip().lower()
        if "@" not in wanted:
            raise BadInput(f'--revoke："{revoke}" 不是邮箱地址')
        with transaction(open_engine()) as session:
            ended = office_sessions.revoke(session, wanted, now(), Actor.cli().name)
        if as_json:
            print_json_lines([{"email": wanted, "ended": ended}])
        else:
            console.print(f"{wanted}：已结束 {ended} 个会话，未使用的登录链接已作废。", markup=False)
        return
    from orchestrator.admin.overview import display_tz

    with Session(open_engine()) as session:
        zone = display_tz(session)
        rows = [session_row(row, zone) for row in office_sessions.live_sessions(session, now())]
    if as_json:
        print_json_lines(rows)
        return
    _print_sessions(rows)


def session_row(row, zone) -> dict:
    """One live session as the stable JSON row of ``web sessions --json`` (times in the plan's zone)."""
    return {
        "id": row.id,
        "email": row.email,
        "created_at": row.created_at.astimezone(zone).isoformat(timespec="seconds"),
        "expires_at": row.expires_at.astimezone(zone).isoformat(timespec="seconds"),
        "client": row.client,
        "user_agent": row.user_agent,
    }


def _print_sessions(rows: list[dict]) -> None:
    from rich.table import Table
    from rich.text import Text

    from orchestrator.cli.review import printable

    if not rows:
        console.print("没有有效的办公室会话。")
        return
    table = Table(caption=f"有效会话 {len(rows)} 个", caption_justify="left")
    for column in ("#", "邮箱", "登录时间", "到期时间", "来源地址", "浏览器"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            str(row["id"]),
            Text(printable(row["email"])),
            hhmm(row["created_at"]),
            hhmm(row["expires_at"]),
            Text(printable(row["client"] or "—")),
            Text(printable(row["user_agent"] or "—")),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(web_app, name="web")
