"""Operations: the panel's own record of a long-running change to an instance.

The truth about a create or destroy lives here, not in the broker nor in the browser:
a task only carries the id of the operation it should look at.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Operation(models.Model):
    class Kind(models.TextChoices):
        CREATE = "create", "Create"
        DESTROY = "destroy", "Destroy"
        RESET_PASSWORD = "reset_password", "Reset password"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SUBMITTED = "submitted", "In progress"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE_STATES = (State.QUEUED, State.SUBMITTED)
    FINISHED_STATES = (State.SUCCEEDED, State.FAILED)

    # The step indicator: (step value, label) in order, per kind.
    STEPS = {
        Kind.CREATE: (("submitted", "Submitted"), ("creating", "Creating"), ("running", "Running")),
        Kind.DESTROY: (
            ("submitted", "Submitted"),
            ("destroying", "Destroying"),
            ("gone", "Gone"),
        ),
        Kind.RESET_PASSWORD: (("done", "Password reset"),),
    }
    # What a step is called once the operation failed there ("Submitted" would read as
    # if that step had worked).
    FAILED_STEP_LABELS = {"submitted": "Submission failed"}

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dcdn_operations"
    )
    # Who owns the DCDN account: "user:<id>" today, a team later.
    owner_key = models.CharField(max_length=64, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    step = models.CharField(max_length=16, default="submitted")
    instance_id = models.CharField(max_length=64, blank=True)
    instance_name = models.CharField(max_length=63, blank=True)
    # The create order as sent: public data only (SSH public keys, never a secret).
    params = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    error_field = models.CharField(max_length=32, blank=True)
    # Something the owner should know that is not an error (e.g. an adopted instance).
    note = models.TextField(blank=True)
    root_password_encrypted = models.TextField(blank=True, editable=False)
    password_expires_at = models.DateTimeField(null=True, blank=True)
    password_revealed_at = models.DateTimeField(null=True, blank=True)
    # Set just before the create/destroy request leaves: a re-run that finds it set
    # knows the request may have reached DCDN and must look before sending again.
    submitted_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When the next step is due; the reconciler re-enqueues operations long overdue.
    next_poll_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner_key", "state"], name="op_owner_state_idx"),
            models.Index(fields=["owner_key", "instance_id"], name="op_owner_instance_idx"),
            models.Index(fields=["state", "next_poll_at"], name="op_state_next_poll_idx"),
        ]
        constraints = [
            # One active create per name and one active destroy per instance, per owner,
            # also when two requests race.
            models.UniqueConstraint(
                fields=["owner_key", "instance_name"],
                condition=Q(kind="create", state__in=["queued", "submitted"]),
                name="op_one_active_create_per_name",
            ),
            models.UniqueConstraint(
                fields=["owner_key", "instance_id"],
                condition=Q(kind="destroy", state__in=["queued", "submitted"]),
                name="op_one_active_destroy_per_instance",
            ),
        ]

    def __str__(self) -> str:
        target = self.instance_name or self.instance_id or "?"
        return f"{self.kind_label} {target} ({self.state_label})"

    @property
    def kind_label(self) -> str:
        return self.get_kind_display()

    @property
    def state_label(self) -> str:
        return self.get_state_display()

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED_STATES

    @property
    def password_expired(self) -> bool:
        return self.password_expires_at is not None and self.password_expires_at <= timezone.now()

    @property
    def password_wiped(self) -> bool:
        """The password was revealed or expired (and is, or will shortly be, wiped)."""
        return self.password_revealed_at is not None or self.password_expired

    @property
    def has_password_to_reveal(self) -> bool:
        return bool(self.root_password_encrypted) and not self.password_wiped

    def steps(self) -> list[tuple[str, str]]:
        """(label, status) per step; status is "done", "current", "pending" or "failed"."""
        steps = self.STEPS.get(self.kind, ())
        values = [value for value, _ in steps]
        position = values.index(self.step) if self.step in values else 0
        result = []
        for index, (value, label) in enumerate(steps):
            if self.state == self.State.SUCCEEDED or index < position:
                status = "done"
            elif index == position:
                status = "failed" if self.state == self.State.FAILED else "current"
            else:
                status = "pending"
            if status == "failed":
                label = self._failed_label(value, label)
            result.append((label, status))
        return result

    def _failed_label(self, value: str, label: str) -> str:
        return self.FAILED_STEP_LABELS.get(value) or f"{label} failed"

    @property
    def step_label(self) -> str:
        """The step the operation is at, in words; where it stopped if it failed."""
        label = dict(self.STEPS.get(self.kind, ())).get(self.step, self.step.capitalize())
        if self.state == self.State.FAILED:
            return self._failed_label(self.step, label)
        return label


def _connect_signals() -> None:
    from accounts.signals import credential_changed

    from .snapshot import on_credential_changed

    credential_changed.connect(on_credential_changed, dispatch_uid="instances.snapshot.clear")


_connect_signals()
