"""What a transport raises: temporary (try again later) or permanent (do not retry), said in one place.

SMTP 4xx, timeouts and lost connections are temporary; SMTP 5xx for the whole message, bad
credentials and a rejected certificate are permanent. The outbox reads only ``temporary``.
"""

from __future__ import annotations


class TransportError(Exception):
    """A message could not be handed to the mail system (``str()`` is one line, no secret)."""

    temporary = True


class TemporaryFailure(TransportError):
    """Try again later: SMTP 4xx, a timeout, a dropped or refused connection."""

    temporary = True


class PermanentFailure(TransportError):
    """Do not retry: SMTP 5xx for the whole message, bad credentials, a rejected certificate."""

    temporary = False


class RateLimited(TemporaryFailure):
    """One destination asks to slow down (a robot over its 20 messages a minute): try again after
    ``retry_after`` seconds. Not a sign that the whole system is down."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after
