"""What the outbox needs to know of the mail settings: a protocol, so the engine imports no config.

``orchestrator.service.config.MailSettings`` satisfies it; tests may pass anything that does.
"""

from __future__ import annotations

from typing import Protocol


class MailPolicy(Protocol):
    @property
    def sender(self) -> str: ...  # the From of messages rendered here (the failure report)
    @property
    def admin(self) -> str | None: ...  # who gets the daily failure report (None: nobody)
    @property
    def domain(self) -> str: ...  # the right-hand side of Message-IDs
    @property
    def rate_limit(self) -> float: ...  # messages per second; 0 = no limit
    @property
    def max_attempts(self) -> int: ...  # attempts before a message is failed
    @property
    def retry_base(self) -> float: ...  # seconds before the first retry
    @property
    def retry_max(self) -> float: ...  # the longest wait between two attempts
