"""Configuration: ``config.toml`` loaded once, at start, into frozen validated settings.

Relative paths in the file are resolved against the file's folder. Secrets are never in the file
and are read only when they are used: the SMTP password and the links' signing key come from a
file or an environment variable the file names, else from the folder of credentials — systemd's
``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``) for a service, else the top-level ``credentials``
folder of config.toml (what the CLI reads, outside systemd): ``smtp-password``, ``web-secret``.
"""

from __future__ import annotations

import os
import re
from datetime import date, time
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from workflows.errors import DefinitionError, Problem
from workflows.source import read_toml
from workflows.units import _no_control

DEFAULT_CONFIG = Path("config.toml")
WEB_CREDENTIAL = "web-secret"
SMTP_CREDENTIAL = "smtp-password"
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")


def _check_window(value: str) -> str:
    found = _WINDOW.match(value.strip())
    if not found:
        raise ValueError(f'bad send window "{value}": expected "HH:MM-HH:MM", e.g. "09:00-17:30"')
    h1, m1, h2, m2 = (int(g) for g in found.groups())
    if not (h1 < 24 and h2 <= 24 and m1 < 60 and m2 < 60) or (h1, m1) >= (h2, m2):
        raise ValueError(f'bad send window "{value}": the start must be before the end, within one day')
    return value.strip()


def credential_file(name: str, folder: Path | None) -> Path | None:
    """Where the credential ``name`` is: ``$CREDENTIALS_DIRECTORY/name`` when systemd handed it over
    (``LoadCredential=``), else ``folder/name`` (the config's ``credentials``) when it is there —
    or cannot be looked at (reading it then says why) —, else None."""
    handed = os.environ.get("CREDENTIALS_DIRECTORY")
    if handed and (Path(handed) / name).is_file():
        return Path(handed) / name
    if folder is None:
        return None
    try:
        (folder / name).stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        pass
    return folder / name


class ConfigError(DefinitionError):
    """The config file is missing or broken: bad input (exit 2), every problem as FILE:LINE."""

    exit_code = 2


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/duban.db"


class DefinitionSettings(_Section):
    paths: list[Path] = Field(default_factory=list)
    units: Path | None = None
    calendar_overrides: Path | None = None


class DaemonSettings(_Section):
    tick_interval: float = Field(default=60.0, gt=0)
    horizon_days: int = Field(default=400, ge=30)
    dispatch_interval: float = Field(default=30.0, gt=0)
    standby_poll: float = Field(default=5.0, gt=0)


class SmtpSettings(_Section):
    """``[mail.smtp]``; the password: ``password_file``, else ``$password_env``, else the credential
    ``smtp-password`` (see ``credential_file``)."""

    host: str = "localhost"
    port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password_file: Path | None = None
    password_env: str | None = None
    timeout: float = Field(default=30.0, gt=0)
    verify: bool = True
    ca_file: Path | None = None
    _credentials: Path | None = PrivateAttr(default=None)  # the config's credentials folder

    def password(self) -> str | None:
        """Read the password now (file, environment, credential); never logged, never stored."""
        from workflows.errors import DubanError

        if self.password_file is not None:
            try:
                return self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise DubanError(f"smtp password_file {self.password_file}: {exc.strerror}") from None
        if self.password_env:
            return os.environ.get(self.password_env)
        found = credential_file(SMTP_CREDENTIAL, self._credentials)
        if found is None:
            return None
        try:
            return found.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DubanError(f"smtp password {found}: {exc.strerror}") from None


class SignatureSettings(_Section):
    """The office that signs every digest: ``[mail.signature]`` name, phone, address."""

    name: Annotated[str, AfterValidator(_no_control), Field(min_length=1)]
    phone: Annotated[str | None, AfterValidator(_no_control)] = None
    address: Annotated[str | None, AfterValidator(_no_control)] = None


class MailSettings(_Section):
    transport: Literal["maildir", "smtp"] = "maildir"
    maildir: Path = Path("var/mail")
    sender: str = "督办系统 <duban@example.gov.cn>"
    reply_to: str | None = None
    admin: str | None = None
    domain: str = "duban.example.gov.cn"
    send_window: Annotated[str, AfterValidator(_check_window)] = "09:00-17:30"
    rate_limit: float = Field(default=0.0, ge=0, description="messages per second; 0 = no limit")
    max_attempts: int = Field(default=8, ge=1)
    retry_base: float = Field(default=60.0, gt=0, description="seconds before the first retry")
    retry_max: float = Field(default=3600.0, gt=0)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    calendar: Literal["events", "todos", "both"] = "events"  # deadlines in the .ics part
    render_process: bool = Field(
        default=True,
        description="a big delivery's digests are rendered in a second process while the daemon sends",
    )
    signature: SignatureSettings | None = None

    @property
    def window(self) -> tuple[time, time]:
        found = _WINDOW.match(self.send_window)
        assert found
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        return time(h1, m1), (time(23, 59, 59) if h2 == 24 else time(h2, m2))


class WebSettings(_Section):
    """``[web]``: the portal, and the links every email carries to it. The signing key is never in
    this file: ``$secret_env``, else ``secret_file`` (``make run`` creates ``var/web-secret``),
    else the credential ``web-secret`` (see ``credential_file``). ``links = false``: the emails
    carry no link (and the daemon does not ask for the key)."""

    listen: str = "127.0.0.1:8080"
    base_url: str = "http://127.0.0.1:8080"
    links: bool = True
    secret_file: Path | None = None
    secret_env: str | None = None
    evidence_dir: Path = Path("var/evidence")
    max_file_mb: float = Field(default=20.0, gt=0, le=1024)
    max_files: int = Field(default=10, ge=1, le=100)
    office_emails: list[str] = Field(default_factory=list)
    link_days: int = Field(default=456, ge=1, description="a unit link's validity: a year and a margin")
    extension_years: int = Field(
        default=1, ge=0, le=10, description="a due date may move to 12-31 of the program's year plus this"
    )
    # slow clients (orchestrator.web.edge): seconds for a request's headers; seconds without a byte
    # of its body, after which it must also average min_upload_rate bytes a second; connections
    # at once from one address (not counting the trusted proxy on 127.0.0.1)
    header_timeout: float = Field(default=15.0, gt=0, le=600)
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    min_upload_rate: int = Field(default=1024, ge=0)
    max_connections_per_client: int = Field(default=50, ge=1)

    _credentials: Path | None = PrivateAttr(default=None)  # the config's credentials folder

    @property
    def base_url_given(self) -> bool:
        """True iff config.toml writes ``base_url`` (the default is this machine's own address)."""
        return "base_url" in self.model_fields_set

    def secret(self) -> str:
        """Read the signing key now (environment, file, credential); never logged, never stored."""
        from workflows.errors import DubanError

        if self.secret_env and os.environ.get(self.secret_env):
            value = os.environ[self.secret_env].strip()
        else:
            path = self.secret_file or credential_file(WEB_CREDENTIAL, self._credentials)
            if path is None:
                raise DubanError(
                    f"[web]: no signing key: set secret_file or secret_env, or give the credential {WEB_CREDENTIAL}"
                )
            what = "[web] secret_file" if self.secret_file is not None else "[web] signing key"
            try:
                value = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise DubanError(f"{what} {path}: {exc.strerror}") from None
        if len(value) < 32:
            raise DubanError("[web]: the signing key is too short (at least 32 characters)")
        return value

    @property
    def link_seconds(self) -> int:
        return self.link_days * 86400

    @property
    def max_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host or "127.0.0.1", int(port)


class ImSettings(_Section):
    """Group robots (企业微信 / 钉钉). Their secrets are in the robots file, never here."""

    robots_file: Path | None = None  # else $CREDENTIALS_DIRECTORY/robots.toml under systemd
    wecom_url: str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"
    dingtalk_url: str = "https://oapi.dingtalk.com/robot/send"
    timeout: float = Field(default=10.0, gt=0)


class ProgramSettings(_Section):
    workflow: str
    year: int | Literal["current"] = "current"
    notify_from: date | None = None  # no unit is told of a date before it (default: the first start)
    settings: dict[str, str] = Field(default_factory=dict)  # the plan's [settings] set here ("MM-DD")


class Settings(_Section):
    path: Path | None = None
    credentials: Path | None = None  # the folder of web-secret and smtp-password, outside systemd
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    definitions: DefinitionSettings = Field(default_factory=DefinitionSettings)
    registers: dict[str, Path] = Field(default_factory=dict)
    daemon: DaemonSettings = Field(default_factory=DaemonSettings)
    mail: MailSettings = Field(default_factory=MailSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    im: ImSettings = Field(default_factory=ImSettings)
    programs: list[ProgramSettings] = Field(default_factory=list)


def _resolve(base: Path, value: Path | None) -> Path | None:
    if value is None:
        return None
    value = value.expanduser()
    return value if value.is_absolute() else (base / value)


def _resolve_url(base: Path, url: str) -> str:
    """``sqlite:///var/duban.db`` is relative to the config file's folder."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////") and ":memory:" not in url:
        return prefix + str(base / url[len(prefix) :])
    return url


def load_settings(path: Path | None, *, required: bool = False) -> Settings:
    """Load ``path`` (or ``./config.toml``); without a file, the embedded defaults under ``./var``."""
    if path is None:
        path = Path(os.environ.get("DUBAN_CONFIG", DEFAULT_CONFIG))
        required = required or "DUBAN_CONFIG" in os.environ
    if not path.exists():
        if required:
            raise ConfigError([Problem(str(path), 1, "config file not found")])
        return Settings()
    try:
        data, source, _ = read_toml(path)
    except DefinitionError as exc:
        raise ConfigError(exc.problems) from None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        from workflows.loader import _pydantic_problems  # only for a broken file: loading it costs

        raise ConfigError(_pydantic_problems(exc, Settings, str(path), source)) from None
    base = path.resolve().parent
    mail = settings.mail
    credentials = _resolve(base, settings.credentials)
    smtp = mail.smtp.model_copy(
        update={
            "password_file": _resolve(base, mail.smtp.password_file),
            "ca_file": _resolve(base, mail.smtp.ca_file),
        }
    )
    web = settings.web.model_copy(
        update={
            "secret_file": _resolve(base, settings.web.secret_file),
            "evidence_dir": _resolve(base, settings.web.evidence_dir),
        }
    )
    smtp._credentials = web._credentials = credentials  # (the sections read their secrets from it)
    return settings.model_copy(
        update={
            "path": path.resolve(),
            "credentials": credentials,
            "database": DatabaseSettings(url=_resolve_url(base, settings.database.url)),
            "definitions": DefinitionSettings(
                paths=[_resolve(base, p) for p in settings.definitions.paths],
                units=_resolve(base, settings.definitions.units),
                calendar_overrides=_resolve(base, settings.definitions.calendar_overrides),
            ),
            "registers": {k: _resolve(base, v) for k, v in settings.registers.items()},
            "mail": mail.model_copy(update={"maildir": _resolve(base, mail.maildir), "smtp": smtp}),
            "web": web,
            "im": settings.im.model_copy(update={"robots_file": _resolve(base, settings.im.robots_file)}),
        }
    )


def config_problem(settings: Settings, loc: tuple[str | int, ...], message: str) -> Problem:
    """A problem of config.toml at the line of ``loc`` (or of its nearest parent written in the
    file; line 1 without a file)."""
    path = settings.path
    if path is None:
        return Problem(str(DEFAULT_CONFIG), 1, message)
    try:
        line = read_toml(path)[1].line_of(loc)
    except DefinitionError:
        line = 1
    return Problem(str(path), line, message)
