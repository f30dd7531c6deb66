"""``duban web``: the portal; ``duban web login-link EMAIL``: a one-time office login link."""

from __future__ import annotations

import typer
from sqlmodel import Session

from orchestrator.cli.common import BadInput, console, now, open_engine, state

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
    from orchestrator.web.server import make_portal, serve, split_listen

    address = listen or state.settings.web.listen
    try:
        split_listen(address)
    except ValueError:
        raise BadInput(f'--listen: bad address "{address}", expected HOST:PORT') from None
    portal = make_portal(state.settings)
    configure_daemon(secrets=[portal.key.decode("utf-8", "replace")])
    serve(portal, address)


@web_app.command("login-link")
def login_link(email: str = typer.Argument(..., help="An address listed in \\[web] office_emails.")) -> None:
    """Print a one-time office login link (good for 15 minutes, once).

    Example: [bold]duban web login-link fazhiban@example.gov.cn[/]
    """
    from orchestrator.admin import links

    web = state.settings.web
    wanted = email.strip().lower()
    if wanted not in {e.lower() for e in web.office_emails}:
        raise BadInput(f'"{email}" is not in [web] office_emails')
    key = web.secret()
    with Session(open_engine()) as session:
        token = links.make_office_login(key, wanted, session, now())
        session.commit()
    console.print(f"{web.base_url.rstrip('/')}/office/login/{token}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(web_app, name="web")
