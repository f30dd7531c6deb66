"""Issue 13, point 2: catch-up says each thing once.

When several escalation steps of one task occurrence fire together for one recipient (after
downtime, or because the recipient holds both roles), it gets one listing in which each late unit
appears once — in the email as received by a real aiosmtpd server, in its subject, in
``duban show`` and in ``simulate``'s items.
"""

from __future__ import annotations

import asyncio
from datetime import date
from pathlib import Path

from sqlmodel import Session, select

from notifications.transport import SmtpTransport
from orchestrator.admin.overview import story
from orchestrator.engine.clock import FakeClock
from orchestrator.engine.outbox import deliver, enqueue
from orchestrator.engine.programs import start_program
from orchestrator.engine.tick import tick
from orchestrator.service.config import MailSettings, Settings
from orchestrator.service.runtime import make_renderer
from orchestrator.store.db import transaction
from orchestrator.store.models import NotificationItem, Obligation
from tests.engine_support import local, policy_for, sqlite_engine, write_bundle
from tests.smtp_server import SmtpServer

# T1 (due 06-10) is led by role:office, and the second step goes to role:office: the office gets
# both steps. After an outage from 06-05 to 06-22 both fire at the same tick.
AFTER_OUTAGE = local(2026, 6, 22, 9, 30)


def test_two_steps_firing_together_list_each_late_unit_once(tmp_path: Path) -> None:
    engine = sqlite_engine(tmp_path)
    bundle = write_bundle(tmp_path / "plan")
    policy = policy_for(bundle)
    with transaction(engine) as session:
        start_program(session, bundle, 2026, local(2026, 5, 1))
    tick(engine, local(2026, 6, 5, 9, 0), policy)
    tick(engine, AFTER_OUTAGE, policy)  # overdue, step 0 (lead) and step 1 (office) at once
    with Session(engine) as session:
        escalations = session.exec(
            select(NotificationItem).where(
                NotificationItem.kind == "escalation", NotificationItem.task == "T1"
            )
        ).all()
    assert {(i.recipient, len(i.late)) for i in escalations} == {("office", 2)}
    assert len(escalations) == 2  # one per step: what was decided is kept as it was

    settings = Settings()
    renderer = make_renderer(settings)
    bundles = {bundle.definition.workflow.id: bundle}
    enqueue(engine, AFTER_OUTAGE, bundles, renderer)
    with SmtpServer() as server:
        transport = SmtpTransport(host=server.host, port=server.port, security="none", timeout=10)
        mail = MailSettings(sender="督办系统 <duban@example.gov.cn>", domain="duban.test")
        asyncio.run(deliver(engine, FakeClock(AFTER_OUTAGE), transport, renderer, bundles, mail))
        received = [r.message for r in server.received]
    office = [m for m in received if "office@example.gov.cn" in str(m["To"]) and "催办" in str(m["Subject"])]
    assert len(office) == 1
    message = office[0]
    assert "2项催办" in str(message["Subject"])  # not 4
    text = message.get_body(("plain",)).get_content()
    assert text.count("2个单位逾期") == 1 and "4个单位逾期" not in text
    assert text.count("- 执法局一：") == 1 and text.count("- 执法局二：") == 1
    html = message.get_body(("html",)).get_content()
    assert html.count(">执法局一<") == 1

    with Session(engine) as session:
        late = session.exec(
            select(Obligation).where(Obligation.task == "T1", Obligation.unit == "agency-1")
        ).one()
        shown = story(session, late, {}, AFTER_OUTAGE)
    escalated = [n for n in shown["notices"] if n["kind"] == "escalation"]
    assert [(n["recipient"], n["subject"]) for n in escalated] == [("office", str(message["Subject"]))]
    assert date(2026, 6, 10) == late.due
