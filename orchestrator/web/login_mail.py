"""The office's one-time login link, emailed: ``/office`` asks for an address; if it is one of
``[web] office_emails`` a link (15 minutes, once) is sent to it through the configured transport
(the maildir under ``make run``: the ``.eml`` lands in ``var/mail/new``).

The link is a credential: it is sent at once and never stored (the login's nonce is, and the
request is in the audit log as ``office.login_link``). The answer is the same whether the
address is listed or not, throttled or not: the page says "if the address is listed, a link was
sent", and the mail goes after the answer (no timing tells either).

Requests are limited three ways, each its own count, so a stranger cannot spend the office's
allowance (``security.LoginRequests``, one per portal): per client address (5 in 15 minutes, whatever the address); per
address and client (2 in 15 minutes: a stranger puts at most two unwanted mails a quarter-hour
into a mailbox from one address); and per address from clients the office has never logged in
from (10 an hour: a flood from many addresses is capped too, while the office's own addresses —
those its sessions came from in the last 30 days — keep their own allowance).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import structlog
from starlette.concurrency import run_in_threadpool

from orchestrator.admin import links, office_sessions
from orchestrator.service.runtime import make_transport
from orchestrator.web.portal import Portal

log = structlog.get_logger("duban.web")
KNOWN_FOR = timedelta(days=30)  # a client address the office logged in from stays "its own" this long


BODY = """您好：

您（或有人以您的邮箱）申请登录督办工作台。请在 15 分钟内打开以下链接登录，链接只能使用一次：

{url}

如非本人操作，请忽略本邮件；登录链接过期后自动失效。

督办系统
{when}
"""


def login_message(portal: Portal, email: str, url: str, now: datetime) -> EmailMessage:
    mail = portal.settings.mail
    message = EmailMessage()
    message["From"] = mail.sender
    message["To"] = email
    message["Subject"] = "督办工作台登录链接（15 分钟内有效）"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid("office-login", domain=mail.domain)
    message["Auto-Submitted"] = "auto-generated"
    local = now.astimezone(portal.display_zone())
    when = f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"
    message.set_content(BODY.format(url=url, when=when))
    return message


def _login_token(portal: Portal, email: str, client: str | None, now: datetime) -> str | None:
    """A new login token for ``email`` if it is an office address and the limits allow a mail."""
    listed = email in portal.office_emails
    with portal.session() as session:
        known = (
            listed
            and client is not None
            and client in office_sessions.known_clients(session, email, now - KNOWN_FOR)
        )
        if not portal.login_requests.allow(email, client, known):
            log.warning("web.login_link_throttled", client=client)
            return None
        if not listed:
            log.info("web.login_link_refused", client=client)
            return None
        token = links.make_office_login(portal.key, email, session, now)
        session.commit()
    return token


async def send_login_link(portal: Portal, email: str, client: str | None) -> None:
    """Email a login link to ``email`` if it is an office address (within the rate limits)."""
    wanted = email.strip().lower()
    now = portal.now()
    token = await run_in_threadpool(_login_token, portal, wanted, client, now)
    if token is None:
        return
    url = f"{portal.settings.web.base_url.rstrip('/')}/office/login/{token}"
    try:
        transport = make_transport(portal.settings)
        await transport.open()
        try:
            result = await transport.send(login_message(portal, wanted, url, now), [wanted])
        finally:
            await transport.close()
    except Exception as exc:  # a mail failure must not show on the page (nor the link in a log)
        log.error("web.login_link_not_sent", error=type(exc).__name__)
        return
    log.info("web.login_link_sent", refused=len(getattr(result, "refused", {}) or {}))
