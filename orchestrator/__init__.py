"""duban's state and time: the tables, the tick, the outbox, the daemon, the operators' commands.

Sub-packages by role; an arrow is "may import" (and what it reaches, it may import too)::

    cli ─┬─► admin ──────┐
    web ─┼─► evaluation ─┼─► engine ──► store
         └─► service ────┘

- ``store/``: the tables (``models``), every state and kind named once (``states``), engines and
  transactions (``db``), the audit log (``audit``), the Alembic ``migrations/``.
- ``engine/``: the decisions that change rows, with ``now`` as a parameter — the send window
  (``window``), the clock protocol (``clock``), starting and reconciling programs (``programs``),
  ``tick``, approved extensions (``extensions``), grouping items into digests (``digest``),
  ``simulate``, and ``outbox/`` (enqueue, claims, letters, deliver, outcomes, group robots, the
  admin's failure report).
- ``service/``: the daemon process — config, robots file, logs, leadership, systemd, scheduling, reload, and
  the work it does on the database (``work``); ``runtime`` builds the renderer and the transport
  from config.
- ``admin/``: what operators read (``overview``) and change (``operations``), and how they name
  one obligation (``refs``); what units submit through their signed links and how the office
  decides (``submissions``, ``evidence``, ``portal``, ``links``).
- ``evaluation/``: indicator values and the year-end scorecard (``indicators``, ``scoring``).
- ``cli/``: one module per command group: parse → one call → print. ``web/``, the portal units
  and the office use through their links, sits beside it as a second edge.

The rule, enforced by ``tests/test_layout.py`` (it parses the imports of every module):

- ``store`` imports no other sub-package; ``engine`` only ``store``; ``admin`` and
  ``evaluation`` only ``engine`` and ``store``; ``service`` those two, ``evaluation`` (the
  evaluate phase's email carries the scorecard) and ``admin.links`` (it signs the unit links its
  digests carry); the edges ``cli`` and ``web`` anything below them, and ``cli`` also ``web``
  (``duban web`` serves the portal) — never the other way.
- ``notifications`` is imported by the layers that render or send: ``engine`` (digests, the
  failure report), ``admin``, ``evaluation`` (the scorecard report) and ``service`` (which builds
  the renderer and transport); never by ``store``. The edges read only its words: the zh-CN
  labels of ``notifications.labels``.
- ``workflows`` (pure plan-as-data) and ``notifications`` import nothing from ``orchestrator``;
  ``workflows`` imports nothing from ``notifications`` either.
"""
