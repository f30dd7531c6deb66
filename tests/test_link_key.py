"""Every email carries its unit's link, or the daemon says why before it starts.

With mail going out by SMTP and ``[web] base_url`` written, a signing key that cannot be read is a
refusal (one located line, exit 2, nothing done), at start and at a reload; ``[web] links = false``
says the emails carry no link. The key (and the SMTP password) come from systemd's
``$CREDENTIALS_DIRECTORY`` for a service, else from the config's ``credentials`` folder.
"""

from __future__ import annotations

import re
import secrets
import signal
from datetime import datetime

import pytest
from smtp_server import SmtpServer, free_port
from sqlmodel import Session
from support import FAKE_NOW, DubanEnv

from orchestrator.admin import links

BASE_URL = "https://duban.county.test"


def smtp_env(make_duban_env, port: int, web: str, *, credentials: str | None = None) -> DubanEnv:
    env = make_duban_env(
        mail=f'transport = "smtp"\n\n[mail.smtp]\nhost = "127.0.0.1"\nport = {port}\nsecurity = "none"\ntimeout = 5\n'
    )
    text = env.config_path.read_text(encoding="utf-8") + f'\n[web]\nbase_url = "{BASE_URL}"\n{web}'
    if credentials is not None:
        text = f'credentials = "{credentials}"\n' + text
    env.config_path.write_text(text, encoding="utf-8")
    return env


def base_url_line(env: DubanEnv) -> int:
    return env.config_path.read_text(encoding="utf-8").splitlines().index(f'base_url = "{BASE_URL}"') + 1


def key_in(folder, key: str | None = None) -> str:
    key = key or secrets.token_urlsafe(48)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "web-secret").write_text(key + "\n", encoding="utf-8")
    return key


def test_without_a_readable_key_the_daemon_refuses_before_doing_anything(make_duban_env, notify_socket):
    env = smtp_env(
        make_duban_env, free_port(), "", credentials="credentials"
    )  # (an empty credentials folder)
    (env.root / "credentials").mkdir()
    done = env.cli("run", "--once")
    assert done.returncode == 2
    (line,) = done.stderr.splitlines()
    assert line.startswith(
        f"{env.config_path}:{base_url_line(env)}: [web] base_url is set and mail goes out by SMTP"
    )
    assert "without its unit's link" in line and "[web] links = false" in line
    assert env.scalar("SELECT count(*) FROM program") == 0  # nothing started, nothing queued

    daemon = env.start(notify=notify_socket)  # as systemd starts it: the same line, before READY=1
    assert daemon.wait(timeout=30) == 2
    assert any(
        line.startswith(f"{env.config_path}:{base_url_line(env)}: [web] base_url is set")
        for line in daemon.stderr
    )
    assert notify_socket.count("READY=1") == 0

    # the same config over maildir (nothing leaves the machine): started, with a warning
    env.config_path.write_text(
        env.config_path.read_text(encoding="utf-8").replace('transport = "smtp"', 'transport = "maildir"'),
        encoding="utf-8",
    )
    done = env.cli("run", "--once")
    assert done.returncode == 0, done.stderr
    assert '"web.links_unavailable"' in done.stdout


def links_in(server: SmtpServer) -> dict[str, str]:
    """unit id → the link in its email (``{}`` where none)."""
    found = {}
    for received in server.received:
        unit = received.rcpt_tos[0].split("@")[0]
        text = received.message.get_body(("plain",)).get_content()
        match = re.search(re.escape(BASE_URL) + r"/u/(\S+)", text)
        found[unit] = match.group(1) if match else ""
    return found


def test_links_false_sends_every_email_without_a_link_and_asks_for_no_key(make_duban_env):
    with SmtpServer() as server:
        env = smtp_env(make_duban_env, server.port, "links = false\n")
        done = env.cli("run", "--once")
        assert done.returncode == 0, done.stderr
        found = links_in(server)
    assert len(found) == 4 and set(found.values()) == {""}  # the office and three towns, no link
    assert "links_unavailable" not in done.stdout


def unit_of(env: DubanEnv, key: str, token: str) -> str | None:
    engine = env.engine()
    try:
        with Session(engine) as session:
            now = datetime.fromisoformat(FAKE_NOW)
            return links.read_unit_token(key, token, session, 86400.0, now=now)
    finally:
        engine.dispose()


@pytest.mark.parametrize("systemd", [False, True])
def test_the_key_comes_from_systemd_or_else_the_configs_credentials_folder(make_duban_env, systemd):
    with SmtpServer() as server:
        env = smtp_env(make_duban_env, server.port, "", credentials="credentials")
        folder_key = key_in(env.root / "credentials")
        handed_key = key_in(env.root / "run/credentials/duban.service")
        extra = {"CREDENTIALS_DIRECTORY": str(env.root / "run/credentials/duban.service")} if systemd else {}
        done = env.cli("run", "--once", env=env.base_env(**extra))
        assert done.returncode == 0, done.stderr
        found = links_in(server)
    used, other = (handed_key, folder_key) if systemd else (folder_key, handed_key)
    assert len(found) == 4
    for unit, token in found.items():
        assert unit_of(env, used, token) is not None, unit
        assert unit_of(env, other, token) is None


def test_a_reload_that_loses_the_key_keeps_the_running_configuration(make_duban_env, notify_socket):
    with SmtpServer() as server:
        env = smtp_env(make_duban_env, server.port, "", credentials="credentials")
        key_in(env.root / "credentials")
        daemon = env.start(notify=notify_socket)
        notify_socket.wait_for("READY=1")
        (env.root / "credentials/web-secret").unlink()
        seen = len(notify_socket.datagrams)
        daemon.signal(signal.SIGHUP)
        ready = notify_socket.wait_for("READY=1", after=seen + 1)
        assert "沿用原配置" in ready
        problem = daemon.wait_for_event("reload.problem")
        assert problem["problem"].startswith(f"{env.config_path}:{base_url_line(env)}: [web] base_url is set")
        assert daemon.proc.poll() is None
        assert daemon.stop() == 0
