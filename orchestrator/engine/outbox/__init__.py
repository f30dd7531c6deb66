"""The outbox: claim due items → group → render → send → record.

Two steps, each durable before the next acts:

1. ``enqueue`` (enqueue.py): pending items whose send slot has come are grouped into one
   ``OutboxMessage`` per recipient and local day, with a Message-ID derived from the item keys.
2. ``deliver`` (deliver.py): due messages are claimed (claims.py; ``FOR UPDATE SKIP LOCKED`` on
   PostgreSQL), turned into emails (letters.py) and handed to the transport over one connection;
   the outcomes, with their audit events (outcomes.py), are committed a group at a time
   (``GROUP_SIZE`` messages or ``GROUP_SECONDS``) in the transaction that confirms the next group's
   claims, run while the last message before that group is on the wire. A crash between the
   server's accept and that commit leaves the group's messages claimed; when the claims expire
   (``CLAIM_SECONDS``) they go back to pending (the interrupted send counting as an attempt) and
   are sent again with the same Message-IDs.

A unit's group robots get their own rows beside its email (``channel`` ``robot:NAME``), sent by
``deliver_robots`` (robots.py) over a ``RobotTransport``, paced per robot, failures counted per
robot; the daemon delivers each robot apart (``due_robot_channels``), beside the email.

Failed messages and refused recipients are listed once a day to ``mail.admin`` (failures.py),
through the outbox like any other email. Nothing is ever deleted.
"""

from orchestrator.engine.outbox.claims import CLAIM_SECONDS, due_robot_channels
from orchestrator.engine.outbox.deliver import DeliverReport, deliver
from orchestrator.engine.outbox.enqueue import enqueue
from orchestrator.engine.outbox.failures import ADMIN_RECIPIENT, queue_failure_report, report_failures
from orchestrator.engine.outbox.outcomes import backoff
from orchestrator.engine.outbox.policy import MailPolicy
from orchestrator.engine.outbox.robots import deliver_robots

__all__ = [
    "ADMIN_RECIPIENT",
    "CLAIM_SECONDS",
    "DeliverReport",
    "MailPolicy",
    "backoff",
    "deliver",
    "deliver_robots",
    "due_robot_channels",
    "enqueue",
    "queue_failure_report",
    "report_failures",
]
