"""The shipped deployment (``deploy/``) installed into a temporary root, as docs/deploy.md installs it.

``install(root)`` copies ``deploy/config.production.toml``, ``deploy/units.example.toml`` and
``deploy/normative_documents.csv`` to ``ROOT/etc/duban`` with every absolute path rewritten under
ROOT (``/etc/duban``, ``/var/lib/duban``), fills in what an administrator fills in (``FILLED``:
the county's domain over ``example.gov.cn``, its name over the ``XX``), and writes the two
credentials in ``ROOT/etc/duban/credentials``. ``filled=False`` leaves the file as shipped.

``ServiceUnit`` reads a shipped systemd unit (``deploy/*.service``) the way the test needs it:
its ``ExecStart`` command, ``WorkingDirectory``, ``Environment``, and ``LoadCredential``, which
``load_credentials`` performs as systemd does (the files copied to
``ROOT/run/credentials/UNIT/ID``; a missing file fails, as the unit would fail to start).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import structlog
from support import DUBAN, FAKE_NOW, REPO

from orchestrator.cli import main

DEPLOY = REPO / "deploy"
DOMAIN = "anxian.test"
SMTP_LOGIN = f"duban@{DOMAIN}"
FILLED = (  # what the administrator writes over the shipped placeholders (docs/deploy.md, step 4)
    ("XX县XX路XX号", "安县府前路1号"),
    ("XXXX-XXXXXXXX", "0571-8000 1000"),
    ("XX县", "安县"),
    ("example.gov.cn", DOMAIN),
)


@dataclass
class Deployment:
    root: Path
    web_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))

    @property
    def etc(self) -> Path:
        return self.root / "etc/duban"

    @property
    def state(self) -> Path:
        return self.root / "var/lib/duban"

    @property
    def config(self) -> Path:
        return self.etc / "config.toml"

    @property
    def credentials(self) -> Path:
        return self.etc / "credentials"

    def rewrite(self, text: str) -> str:
        """The absolute paths of the shipped files, under this root."""
        return text.replace("/etc/duban", str(self.etc)).replace("/var/lib/duban", str(self.state))

    def edit(self, old: str, new: str, *, path: Path | None = None, count: int = 1) -> None:
        """Replace ``old`` (which must be there, ``count`` times) in config.toml or ``path``."""
        path = path or self.config
        text = path.read_text(encoding="utf-8")
        assert text.count(old) == count, f"{old!r} is in {path.name} {text.count(old)} times, not {count}"
        path.write_text(text.replace(old, new), encoding="utf-8")

    def unit(self, name: str) -> ServiceUnit:
        return ServiceUnit.read(DEPLOY / name, self)


def install(root: Path, *, filled: bool = True, smtp_password: str | None = "s3cret-password") -> Deployment:
    """The shipped config, units file and register under ``root`` (see the module's docstring)."""
    site = Deployment(root)
    site.etc.mkdir(parents=True)
    site.state.mkdir(parents=True, mode=0o700)  # (StateDirectory=duban, StateDirectoryMode=0700)
    config = site.rewrite((DEPLOY / "config.production.toml").read_text(encoding="utf-8"))
    units = (DEPLOY / "units.example.toml").read_text(encoding="utf-8")
    if filled:
        for old, new in FILLED:
            assert old in config, f"{old!r} is no longer in deploy/config.production.toml"
            config = config.replace(old, new)
        units = units.replace("example.gov.cn", DOMAIN)
    site.config.write_text(config, encoding="utf-8")
    (site.etc / "units.toml").write_text(units, encoding="utf-8")
    shutil.copyfile(DEPLOY / "normative_documents.csv", site.etc / "normative_documents.csv")
    site.credentials.mkdir(mode=0o750)
    (site.credentials / "web-secret").write_text(site.web_secret + "\n", encoding="utf-8")
    if smtp_password is not None:
        (site.credentials / "smtp-password").write_text(smtp_password + "\n", encoding="utf-8")
    return site


def use_smtp_server(site: Deployment, server, ca_file: Path) -> None:
    """Point ``[mail.smtp]`` at a test server (STARTTLS with a certificate signed by ``ca_file``)."""
    site.edit(f'host = "smtp.{DOMAIN}"', f'host = "{server.host}"')
    site.edit("port = 587", f"port = {server.port}")
    site.edit(
        '# ca_file = "/etc/duban/county-ca.pem"'.replace("/etc/duban", str(site.etc)),
        f'ca_file = "{ca_file}"',
    )


@dataclass
class ServiceUnit:
    """The parts of a shipped ``.service`` file a test runs, with the paths under the test's root."""

    name: str
    exec_start: list[str]
    working_directory: Path
    environment: dict[str, str]
    credentials: dict[str, Path]  # LoadCredential=ID:PATH
    raw: dict[str, list[str]]

    @classmethod
    def read(cls, path: Path, site: Deployment) -> ServiceUnit:
        raw: dict[str, list[str]] = {}
        section = None
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            raw.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
        (command,) = raw["Service.ExecStart"]
        argv = [
            DUBAN if word == "/opt/duban/.venv/bin/duban" else site.rewrite(word)
            for word in shlex.split(command)
        ]
        environment = dict(
            assignment.split("=", 1)
            for value in raw.get("Service.Environment", [])
            for assignment in value.split()
        )
        credentials = {}
        for value in raw.get("Service.LoadCredential", []):
            name, _, source = value.partition(":")
            credentials[name] = Path(site.rewrite(source))
        (workdir,) = raw["Service.WorkingDirectory"]
        return cls(path.name, argv, Path(site.rewrite(workdir)), environment, credentials, raw)

    def load_credentials(self, site: Deployment) -> Path:
        """What systemd does for ``LoadCredential=``: each file copied (read-only) into the unit's own
        credentials folder; returns it (the unit's ``$CREDENTIALS_DIRECTORY``)."""
        folder = site.root / "run/credentials" / self.name
        folder.mkdir(parents=True, mode=0o700)
        for name, source in self.credentials.items():
            assert source.is_file(), (
                f"{self.name}: LoadCredential={name}:{source}: no such file (243/CREDENTIALS)"
            )
            shutil.copyfile(source, folder / name)
            (folder / name).chmod(0o400)
        return folder

    def env(self, credentials: Path, **extra: str) -> dict[str, str]:
        """The unit's environment (and the test clock), with ``$CREDENTIALS_DIRECTORY``."""
        base = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_", "DUBAN_"))}
        base.pop("CREDENTIALS_DIRECTORY", None)
        return (
            base
            | self.environment
            | {"CREDENTIALS_DIRECTORY": str(credentials), "DUBAN_FAKE_NOW": FAKE_NOW}
            | extra
        )


def run_cli(*args: str, now: str = FAKE_NOW, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``duban ARGS`` in this process (as an administrator runs it: no systemd credentials); returns
    (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    saved_logging = structlog.get_config()  # the CLI binds structlog to this run's stderr: put it back after
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", "250")
        patch.setenv("DUBAN_FAKE_NOW", now)
        for name in ("DUBAN_CONFIG", "CREDENTIALS_DIRECTORY"):
            patch.delenv(name, raising=False)
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    structlog.configure(**saved_logging)
    return code, out.getvalue(), err.getvalue()


LOCATED = re.compile(r"^(?P<file>/[^:]+):(?P<line>\d+): (?P<message>.+)$")


def located(stderr: str) -> list[tuple[str, int, str]]:
    """Every ``FILE:LINE: message`` line of ``stderr`` (file name only); fails on any other line
    but the ``duban: warning: 以 root 运行`` one."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("duban: warning: 以 root 运行"):
            continue
        match = LOCATED.match(line)
        assert match, f"not a FILE:LINE: message line: {line!r}"
        found.append((Path(match["file"]).name, int(match["line"]), match["message"]))
    return found


def line_of(path: Path, text: str) -> int:
    """The (first) line of ``path`` that holds ``text``."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(f"{text!r} not in {path}")
