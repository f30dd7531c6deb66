"""How people are told: digests rendered into emails, and the transports that send them.

Plain data in (``model``), messages out (``render``), handed to a ``transport``. This package
knows no tables and imports nothing from ``orchestrator``.

- ``model``: ``Recipient``, ``DigestItem``, ``Digest``, ``KINDS``, ``digest_message_id``
- ``render``: ``Renderer`` (subject, Message-ID, ``EmailMessage``); templates in ``templates/``
- ``view``: the grouping, order and wording of a digest, shared by the text and HTML templates
- ``failures``: ``Undelivered``, ``failure_report`` (the admin's daily failure report)
- ``ics``: the ``.ics`` part and the stable calendar UIDs
- ``transport``: the ``Transport`` protocol, ``classify``, ``SmtpTransport``,
  ``MaildirTransport``, ``CaptureTransport``
"""
