"""The portal in tests: a temporary deployment with ``[web]``, its program started by a real
``duban run --once`` (which writes the first emails), and a real uvicorn serving the app in a
thread on a free port, on a clock that starts at the test's fake now and runs on."""

from __future__ import annotations

import functools
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import uvicorn
from smtp_server import bound_socket, free_port
from sqlmodel import Session
from support import FAKE_NOW, DubanEnv

from orchestrator.admin import links
from orchestrator.engine.clock import ShiftedClock
from orchestrator.service.config import load_settings
from orchestrator.web.portal import Portal
from orchestrator.web.server import make_portal, uvicorn_config

OFFICE_EMAIL = "office@example.gov.cn"
TIMEOUT = 60  # seconds: the suite shares two cores with other work; httpx's 5 s is too tight
get = functools.partial(httpx.get, timeout=TIMEOUT)
post = functools.partial(httpx.post, timeout=TIMEOUT)


def add_web_section(env: DubanEnv, port: int, *, max_file_mb: float = 1, max_files: int = 3) -> str:
    """Append ``[web]`` to the deployment's config; returns the signing key."""
    key = secrets.token_urlsafe(48)
    (env.root / "web-secret").write_text(key + "\n", encoding="utf-8")
    with env.config_path.open("a", encoding="utf-8") as config:
        config.write(
            f'\n[web]\nlisten = "127.0.0.1:{port}"\nbase_url = "http://127.0.0.1:{port}"\n'
            f'secret_file = "web-secret"\nevidence_dir = "evidence"\nmax_file_mb = {max_file_mb}\n'
            f'max_files = {max_files}\noffice_emails = ["{OFFICE_EMAIL}"]\n'
        )
    return key


@dataclass
class PortalServer:
    """uvicorn serving ``portal`` in a daemon thread on ``sock`` (bound to 127.0.0.1:``port``)."""

    portal: Portal
    sock: socket.socket
    thread: threading.Thread | None = None
    server: uvicorn.Server | None = field(default=None, repr=False)
    port: int = field(init=False)

    def __post_init__(self) -> None:
        self.port = self.sock.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PortalServer:
        # the settings `duban web` runs with (the edge's deadlines and caps included)
        config = uvicorn_config(
            self.portal, "127.0.0.1", self.port, timeout_keep_alive=TIMEOUT
        )  # (a loaded machine must not race the idle close)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(timeout=10)


@dataclass
class WebEnv:
    env: DubanEnv
    key: str
    server: PortalServer

    @property
    def portal(self) -> Portal:
        return self.server.portal

    @property
    def url(self) -> str:
        return self.server.url

    def now(self) -> datetime:
        return self.portal.now()

    def unit_link(self, unit: str) -> str:
        with Session(self.portal.engine) as session:
            return links.link_for_unit(self.key, self.url, session, unit, now=self.now())

    def office_client(self, **headers: str) -> httpx.Client:
        """An httpx client logged in to /office (through a fresh one-time link and its button)."""
        client = httpx.Client(timeout=TIMEOUT, headers=headers)
        answer = log_in(client, self.login_link())
        assert answer.status_code == 303, answer.text
        return client

    def login_link(self, email: str = OFFICE_EMAIL) -> str:
        with Session(self.portal.engine) as session:
            token = links.make_office_login(self.key, email, session, self.now())
            session.commit()
        return f"{self.url}/office/login/{token}"

    def obligation_id(self, unit: str, task: str) -> int:
        return self.env.scalar("SELECT id FROM obligation WHERE unit = :u AND task = :t", u=unit, t=task)

    def count(self, table: str) -> int:
        return self.env.scalar(f"SELECT count(*) FROM {table}")

    def evidence_files(self) -> list[Path]:
        root = self.env.root / "evidence"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def start_web_env(env: DubanEnv, *, template: Path | None = None, **limits) -> WebEnv:
    """``[web]`` in ``env``'s config, the program started, and the portal served. With ``template``
    (a deployment that ``duban run --once`` has run in), its database is copied instead of running
    the daemon again: one subprocess per test session instead of one per test."""
    sock = bound_socket()
    key = add_web_section(env, sock.getsockname()[1], **limits)
    if template is None:
        done = env.cli("run", "--once")
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        shutil.copyfile(template / "duban.db", env.database)
    settings = load_settings(env.config_path, required=True)
    portal = make_portal(settings, clock=ShiftedClock(datetime.fromisoformat(FAKE_NOW)))
    return WebEnv(env, key, PortalServer(portal, sock).start())


@pytest.fixture(scope="session", name="web_template")
def web_template_fixture(tmp_path_factory) -> Path:
    """A deployment after one ``duban run --once`` at the test clock (its database is copied)."""
    env = DubanEnv(tmp_path_factory.mktemp("web-template") / "deploy")
    env.upgrade()
    add_web_section(env, free_port())  # (no server there: the port is only written down)
    done = env.cli("run", "--once")
    assert done.returncode == 0, done.stdout + done.stderr
    return env.root


@pytest.fixture(name="web")
def web_fixture(duban_env, web_template) -> Iterator[WebEnv]:
    """The portal on a fresh copy of the template deployment, served by uvicorn in a thread."""
    found = start_web_env(duban_env, template=web_template)
    yield found
    found.server.stop()


PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def log_in(client: httpx.Client, link: str, **kwargs) -> httpx.Response:
    """Use a one-time office login link as a person does: open it (a page, nothing used up), then
    press its one button (a POST); the answer to that POST (303 and the cookie), or the page's."""
    page = client.get(link, **kwargs)
    if page.status_code != 200:
        return page
    path = link.split("://", 1)[-1].partition("/")[2]
    return client.post(link, data={"csrf": csrf_for(page.text, path.rpartition("/")[2])}, **kwargs)


def csrf_for(html: str, action_end: str) -> str:
    """The CSRF token of the form whose action ends with ``action_end``."""
    import re

    pattern = re.compile(
        r'<form method="post" action="[^"]*' + re.escape(action_end) + r'"[^>]*>\s*'
        r'<input type="hidden" name="csrf" value="([^"]+)">'
    )
    found = pattern.search(html)
    assert found, f"no form ending in {action_end}"
    return found.group(1)
