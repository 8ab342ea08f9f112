"""Errors the instances services raise to views (DCDN errors pass through unchanged)."""

from __future__ import annotations


class OperationConflict(Exception):
    """The request clashes with an operation still in progress (e.g. the same name).

    ``field`` names the form field to show the message on ("" for the whole form).
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        self.message = message
        self.field = field
        super().__init__(message)


class PasswordUnavailable(Exception):
    """The one-time root password cannot be shown (any more).

    ``reason`` is one of ``REASONS``; ``message`` is a sentence for the page.
    """

    ALREADY_REVEALED = "already revealed"
    EXPIRED = "expired"
    NONE = "none"
    UNREADABLE = "unreadable"
    REASONS = (ALREADY_REVEALED, EXPIRED, NONE, UNREADABLE)

    MESSAGES = {
        ALREADY_REVEALED: "The root password was already revealed once and has been wiped. "
        "Use Reset password to get a new one.",
        EXPIRED: "The root password was not revealed within 24 hours and has been wiped. "
        "Use Reset password to get a new one.",
        NONE: "There is no root password to reveal for this operation.",
        UNREADABLE: "The stored root password can no longer be decrypted. "
        "Use Reset password to get a new one.",
    }

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.message = self.MESSAGES.get(reason, self.MESSAGES[self.NONE])
        super().__init__(self.message)
