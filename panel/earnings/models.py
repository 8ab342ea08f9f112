"""Payout requests: the panel's own record of every payout it was asked to send.

The row, not the browser or the broker, decides whether DCDN may be asked: a draft is
claimed by one atomic UPDATE before anything is sent, so a form confirmed twice sends
once.
"""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.db import models


def new_confirm_token() -> str:
    return secrets.token_urlsafe(24)


class PayoutRequest(models.Model):
    class State(models.TextChoices):
        DRAFT = "draft", "Awaiting confirmation"
        CANCELLED = "cancelled", "Replaced by a newer request"
        SENDING = "sending", "Sending"
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        UNKNOWN = "unknown", "Unknown, checking"

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="payout_requests"
    )
    # Who the payout belongs to in DCDN terms (a user today, a team later).
    owner_key = models.CharField(max_length=64, db_index=True)
    amount = models.DecimalField(max_digits=28, decimal_places=8)
    wallet_address = models.CharField(max_length=64)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.DRAFT, db_index=True
    )
    # Sent as the Idempotency-Key header: the same key for the one and only POST.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # Rendered on the confirmation form; confirming claims the draft through it.
    confirm_token = models.CharField(
        max_length=64, unique=True, default=new_confirm_token, editable=False
    )
    upstream_payout_id = models.CharField(max_length=128, blank=True)
    upstream_status = models.CharField(max_length=32, blank=True)
    error_message = models.TextField(blank=True)
    # The summary read when the request was prepared, to reconcile an unknown outcome.
    available_before = models.DecimalField(max_digits=28, decimal_places=8, null=True)
    pending_before = models.DecimalField(max_digits=28, decimal_places=8, null=True)
    paid_out_before = models.DecimalField(max_digits=28, decimal_places=8, null=True)
    price_usd = models.DecimalField(max_digits=28, decimal_places=8, null=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Set when an unknown outcome was settled by reading the summary, not by an answer.
    reconciled_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    check_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "state"])]

    def __str__(self) -> str:
        return f"Payout request {self.pk} ({self.state})"

    @property
    def is_settled(self) -> bool:
        return self.state in {self.State.PAID, self.State.FAILED, self.State.CANCELLED}

    @property
    def in_transition(self) -> bool:
        return self.state in {self.State.SENDING, self.State.UNKNOWN}

    @property
    def badge(self) -> str:
        """The CSS badge for the state (badge-<state> classes exist in panel.css)."""
        return {
            self.State.DRAFT: "badge-neutral",
            self.State.CANCELLED: "badge-neutral",
            self.State.SENDING: "badge-pending",
            self.State.PENDING: "badge-pending",
            self.State.PAID: "badge-paid",
            self.State.FAILED: "badge-failed",
            self.State.UNKNOWN: "badge-unknown",
        }[self.State(self.state)]

    @property
    def state_label(self) -> str:
        if self.state == self.State.PENDING and self.reconciled_at:
            return "Pending (reconciled)"
        return self.get_state_display()
