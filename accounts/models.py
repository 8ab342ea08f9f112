from __future__ import annotations

from django.conf import settings
from django.db import models


def owner_key_for(user) -> str:
    """The key that owns a token, its request budget and its caches.

    A user today; a team later gets its own prefix ("team:<id>") without other apps
    changing how they key things.
    """
    return f"user:{user.pk}"


class DcdnCredential(models.Model):
    """One owner's DCDN API token, encrypted at rest (see accounts.crypto)."""

    class Status(models.TextChoices):
        VALID = "valid", "Valid"
        INVALID = "invalid", "Rejected by DCDN"

    owner = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dcdn_credential"
    )
    token_encrypted = models.TextField(editable=False)
    last4 = models.CharField(max_length=4)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VALID)
    verified_at = models.DateTimeField(null=True, blank=True)
    invalid_since = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "DCDN credential"

    def __str__(self) -> str:
        return f"DCDN token ending in {self.last4} ({self.get_status_display()})"

    @property
    def owner_key(self) -> str:
        return f"user:{self.owner_id}"

    @property
    def is_valid(self) -> bool:
        return self.status == self.Status.VALID
