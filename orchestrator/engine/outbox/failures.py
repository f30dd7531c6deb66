"""The admin's daily failure report: what could not be delivered, queued once a day like any email."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import String, cast, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from notifications import zh
from notifications.transport import Transport
from orchestrator.engine.clock import Clock
from orchestrator.engine.outbox.claims import outbox_update
from orchestrator.engine.outbox.deliver import deliver_batch
from orchestrator.engine.outbox.letters import Letters
from orchestrator.engine.outbox.policy import MailPolicy
from orchestrator.engine.window import local_day
from orchestrator.store.audit import DAEMON, record
from orchestrator.store.db import chunks, transaction
from orchestrator.store.models import OutboxMessage
from orchestrator.store.states import Channel, OutboxKind, OutboxState
from workflows.schema import DEFAULT_TIMEZONE

log = structlog.get_logger("duban.dispatch")

ADMIN_RECIPIENT = "(admin)"  # the recipient of failure reports (not a unit id: units cannot have "()")


def queue_failure_report(engine: Engine, now: datetime, mail: MailPolicy, *, timezone: str) -> list[int]:
    """Queue one email to ``mail.admin`` listing what could not be delivered and was not reported yet.

    At most one report per local day (in ``timezone``). Listed: digests that ``failed``, and sent
    digests with refused recipients. They are marked ``reported_at`` in the same transaction as the
    report is queued, so each is reported once. Returns the outbox ids listed (empty: nothing queued).
    """
    if not mail.admin:
        return []
    tz = ZoneInfo(timezone)
    today = local_day(now, tz)
    with transaction(engine) as session:
        last = session.exec(
            select(func.max(OutboxMessage.created_at)).where(OutboxMessage.kind == OutboxKind.FAILURE_REPORT)
        ).one()
        if last is not None and local_day(last, tz) == today:
            return []
        rows = _unreported(session)
        if not rows:
            return []
        message = failure_message(rows, now, mail, tz)
        report = OutboxMessage(
            kind=OutboxKind.FAILURE_REPORT,
            message_id=message["Message-ID"],
            recipient=ADMIN_RECIPIENT,
            to=[mail.admin],
            subject=str(message["Subject"]),
            send_date=today,
            next_attempt_at=now,
            created_at=now,
            body=message.as_bytes(policy=SMTP),
        )
        session.add(report)
        ids = [m.id for m in rows]
        for chunk in chunks(ids):
            session.execute(outbox_update(OutboxMessage.id.in_(chunk)).values(reported_at=now))
        session.flush()
        record(
            session,
            at=now,
            actor=DAEMON,
            kind="mail.failures_reported",
            subject=report.message_id,
            after={"outbox_id": report.id, "to": mail.admin, "messages": ids},
        )
    log.warning("mail.failure_report_queued", messages=len(ids), to=mail.admin)
    return ids


def _unreported(session: Session) -> list[OutboxMessage]:
    unreported = (OutboxMessage.kind == OutboxKind.DIGEST) & OutboxMessage.reported_at.is_(None)
    failed = session.exec(select(OutboxMessage).where(unreported, OutboxMessage.state == OutboxState.FAILED))
    refused = session.exec(
        select(OutboxMessage).where(
            unreported, OutboxMessage.state == OutboxState.SENT, cast(OutboxMessage.refused, String) != "{}"
        )
    )
    rows = {m.id: m for m in [*failed, *refused] if m.state == OutboxState.FAILED or m.refused}
    return [rows[i] for i in sorted(rows)]


def failure_message(
    rows: Sequence[OutboxMessage], now: datetime, mail: MailPolicy, tz: ZoneInfo
) -> EmailMessage:
    """The report's email (plain text, zh-CN): each message, its recipients, and what went wrong."""
    assert mail.admin
    local = now.astimezone(tz)
    by_robot = [m for m in rows if m.channel != Channel.EMAIL]
    failed = [m for m in rows if m.state == OutboxState.FAILED and m.channel == Channel.EMAIL]
    refused = [m for m in rows if m.state != OutboxState.FAILED and m.channel == Channel.EMAIL]
    what = "督办邮件及群机器人消息" if by_robot else "督办邮件"
    lines = [f"截至{zh.day(local.date())} {local:%H:%M}，以下{what}未能投递，请核查：", ""]
    numbers = iter("一二三")
    if failed:
        lines += [f"{next(numbers)}、投递失败的邮件（{len(failed)}封）", ""]
        for m in failed:
            lines += [
                f"#{m.id} 致 {m.recipient}（{', '.join(m.to) or '无地址'}）",
                f"    主题：{m.subject}",
                f"    尝试：{m.attempts}次；原因：{m.last_error or '未知'}",
                "",
            ]
    if refused:
        lines += [f"{next(numbers)}、已投递但有收件人被拒收的邮件（{len(refused)}封）", ""]
        for m in refused:
            lines += [f"#{m.id} 致 {m.recipient}，主题：{m.subject}"]
            lines += [f"    {address}：{reply}" for address, reply in sorted(m.refused.items())]
            lines += [""]
    if by_robot:
        lines += [f"{next(numbers)}、发送失败的群机器人消息（{len(by_robot)}条）", ""]
        for m in by_robot:
            lines += [
                f"#{m.id} 群机器人 {m.channel.removeprefix(Channel.ROBOT)}，致 {m.recipient}",
                f"    内容：{m.subject}",
                f"    尝试：{m.attempts}次；原因：{m.last_error or '未知'}",
                "",
            ]
    lines += [
        "处理办法：",
        "- 查看：duban outbox --state failed",
        "- 排除原因（如核对单位文件中的电子邮箱、邮件服务器设置"
        + ("，机器人文件中的key、access_token、secret" if by_robot else "")
        + "）后重发：",
        "  duban outbox retry 编号，或 duban outbox retry --all-failed",
        "",
        "--",
        "本邮件由督办系统每日自动发送一次，仅列出此前未报告的问题。",
    ]
    digest = hashlib.sha256(",".join(str(m.id) for m in rows).encode()).hexdigest()[:16]
    message = EmailMessage(policy=SMTP)
    message["From"] = mail.sender
    message["To"] = mail.admin
    emails = len(rows) - len(by_robot)
    count = f"{emails}封邮件" if emails else ""
    count += ("、" if emails else "") + f"{len(by_robot)}条群机器人消息" if by_robot else ""
    message["Subject"] = f"【督办系统】{count}投递失败或被拒收"
    message["Date"] = format_datetime(local)
    message["Message-ID"] = f"<failures-{local:%Y%m%d}-{digest}@{mail.domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(lines) + "\n", charset="utf-8", cte="base64")
    return message


async def report_failures(
    engine: Engine,
    clock: Clock,
    transport: Transport,
    mail: MailPolicy,
    *,
    timezone: str = DEFAULT_TIMEZONE,
    node: str = DAEMON,
) -> int:
    """Queue today's failure report (``queue_failure_report``) and send every pending one now.

    Returns how many problem messages the newly queued report lists (0: none queued today). A report
    that cannot be sent stays in the outbox and is retried like any message (also by ``deliver``).
    """
    listed = await asyncio.to_thread(queue_failure_report, engine, clock.now(), mail, timezone=timezone)
    making = Letters(bundles={}, scorecard=None, renderer=None)  # reports are rendered when queued
    await deliver_batch(
        engine,
        clock,
        transport,
        mail,
        making,
        node=node,
        limit=100,
        stop=lambda: False,
        rng=random.Random(),
        kinds=(OutboxKind.FAILURE_REPORT,),
    )
    return len(listed)
