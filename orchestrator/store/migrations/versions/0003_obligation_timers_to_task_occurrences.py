"""the unfired timers of one obligation (revision 0001) become timers of its task occurrence

A first-release database has one timer per notice per obligation (``obligation_id`` set, ``task``
null). Each unfired one is grouped with the same notice of the other units of its task occurrence
(program, task, occurrence, opening and due dates, kind, step, day), and the group becomes:

- one task-occurrence timer with the key the engine gives that notice, when no timer has that key
  yet (an escalation step's recipients: the union of the obligations' recipients; the engine leaves
  each recipient's own obligation out of what it is told, as 0001 did by leaving it out of the list);
- nothing, when that timer exists and has not fired (it already covers these obligations);
- when that timer has already fired (a unit that joined after it did), each timer stays one
  obligation's but gets its task occurrence's fields: the engine applies it to that obligation only.

A timer of one obligation whose key is not the first release's (``{obligation key}/{kind}/{step}/
{day}``: an approved extension's, revision 0005) is narrowed the same way, keeping its key.

Items are keyed by obligation and notice as before (``{obligation key}/{kind}/{step}/{day}/{unit}``),
so nothing already sent is sent again. Fired timers are history and stay as they are. Each program
whose timers are converted gets one ``timers.converted`` event in the audit log.

Revision ID: 0003
Revises: 0007
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0003"
down_revision = "0004"
branch_labels = None
depends_on = None

_TEXT = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime
TIMER = sa.table(
    "timer",
    *(sa.column(n, sa.Integer()) for n in ("id", "program_id", "obligation_id", "step")),
    *(sa.column(n, _TEXT()) for n in ("key", "kind", "phase", "outcome", "task", "occurrence")),
    sa.column("fire_at", _TIME()),
    sa.column("fired_at", _TIME()),
    sa.column("on", sa.Date()),
    sa.column("due", sa.Date()),
    sa.column("opens", sa.Date()),
    sa.column("recipients", sa.JSON()),
)
OBLIGATION = sa.table(
    "obligation",
    sa.column("id", sa.Integer()),
    *(sa.column(n, _TEXT()) for n in ("key", "task", "occurrence", "phase")),
    sa.column("opens", sa.Date()),
    sa.column("due", sa.Date()),
)
PROGRAM = sa.table(
    "program", sa.column("id", sa.Integer()), sa.column("workflow", _TEXT()), sa.column("year", sa.Integer())
)
EVENT = sa.table(
    "event",
    sa.column("at", _TIME()),
    *(sa.column(n, _TEXT()) for n in ("actor", "kind", "subject", "detail")),
    sa.column("program_id", sa.Integer()),
    sa.column("after", sa.JSON()),
)
CHUNK = 900  # ids per IN list (SQLite's variable limit)


def _legacy_timers(connection) -> list:
    t, o, p = TIMER.c, OBLIGATION.c, PROGRAM.c
    query = (
        sa.select(
            t.id,
            t.program_id,
            t.kind,
            t.step,
            t.on,
            t.fire_at,
            t.recipients,
            t.key,
            o.key.label("obligation_key"),
            o.task,
            o.occurrence,
            o.opens,
            o.due,
            o.phase,
            p.workflow,
            p.year,
        )
        .join(OBLIGATION, o.id == t.obligation_id)
        .join(PROGRAM, p.id == t.program_id)
        .where(t.obligation_id.is_not(None), t.task.is_(None), t.fired_at.is_(None))
        .order_by(t.id)
    )
    return connection.execute(query).all()


def _group_key(row) -> str:
    """The key ``engine.programs`` gives the task occurrence's timer of this notice."""
    base = f"{row.workflow}/{row.year}/{row.task}/*/{row.occurrence or '-'}/{row.opens}/{row.due}"
    return f"{base}/{row.kind}/{row.step}/{row.on}"


def _existing(connection, keys: list[str]) -> dict[str, bool]:
    """Key → whether that timer has fired, for the keys that exist."""
    found = {}
    for start in range(0, len(keys), CHUNK):
        chunk = keys[start : start + CHUNK]
        rows = connection.execute(sa.select(TIMER.c.key, TIMER.c.fired_at).where(TIMER.c.key.in_(chunk)))
        found.update({key: fired_at is not None for key, fired_at in rows})
    return found


def _new_timer(key: str, rows: list) -> dict:
    first = rows[0]
    recipients: dict[str, None] = {}
    if first.kind == "escalation":  # (the other kinds: each unit itself)
        for row in rows:
            recipients.update(dict.fromkeys(row.recipients or ()))
    return {
        "key": key,
        "fire_at": min(row.fire_at for row in rows),
        "kind": first.kind,
        "program_id": first.program_id,
        "obligation_id": None,
        "phase": first.phase,
        "step": first.step,
        "on": first.on,
        "recipients": list(recipients),
        "fired_at": None,
        "outcome": None,
        "task": first.task,
        "occurrence": first.occurrence,
        "due": first.due,
        "opens": first.opens,
    }


def upgrade() -> None:
    connection = op.get_bind()
    groups: dict[str, list] = {}
    own: list = []
    for row in _legacy_timers(connection):
        if row.key == f"{row.obligation_key}/{row.kind}/{row.step}/{row.on}":
            groups.setdefault(_group_key(row), []).append(row)
        else:  # a timer the first release did not write (an extension's): its obligation's only
            own.append(row)
    if not groups and not own:
        return
    existing = _existing(connection, list(groups))
    new, drop, narrowed = [], [], list(own)
    counts: dict[int, dict[str, int]] = {}
    for key, rows in groups.items():
        tally = counts.setdefault(
            rows[0].program_id, {"timers": 0, "task_occurrence_timers": 0, "narrowed": 0}
        )
        tally["timers"] += len(rows)
        if key not in existing:
            new.append(_new_timer(key, rows))
            drop.extend(row.id for row in rows)
            tally["task_occurrence_timers"] += 1
        elif not existing[key]:
            drop.extend(row.id for row in rows)
        else:
            narrowed.extend(rows)
            tally["narrowed"] += len(rows)
    for row in own:
        tally = counts.setdefault(row.program_id, {"timers": 0, "task_occurrence_timers": 0, "narrowed": 0})
        tally["timers"] += 1
        tally["narrowed"] += 1
    if new:
        op.bulk_insert(TIMER, new)
    for start in range(0, len(drop), CHUNK):
        connection.execute(sa.delete(TIMER).where(TIMER.c.id.in_(drop[start : start + CHUNK])))
    if narrowed:
        connection.execute(
            sa.update(TIMER)
            .where(TIMER.c.id == sa.bindparam("timer_id"))
            .values(
                task=sa.bindparam("t_task"),
                occurrence=sa.bindparam("t_occurrence"),
                due=sa.bindparam("t_due"),
                opens=sa.bindparam("t_opens"),
            ),
            [
                {
                    "timer_id": r.id,
                    "t_task": r.task,
                    "t_occurrence": r.occurrence,
                    "t_due": r.due,
                    "t_opens": r.opens,
                }
                for r in narrowed
            ],
        )
    now = datetime.now(UTC)
    op.bulk_insert(
        EVENT,
        [
            {
                "at": now,
                "actor": "migration 0003",
                "kind": "timers.converted",
                "program_id": program_id,
                "subject": f"program #{program_id}",
                "after": tally,
                "detail": "unfired timers of one obligation → timers of its task occurrence",
            }
            for program_id, tally in sorted(counts.items())
        ],
    )


def downgrade() -> None:
    """Nothing to undo in the schema; the timers stay as task-occurrence timers (0002 fires them)."""
