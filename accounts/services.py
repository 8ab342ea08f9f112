"""Saving, checking and using a user's DCDN API token.

The token is plaintext only inside these functions (all marked sensitive so error
reports blank it) and inside the DcdnClient that carries it upstream.
"""

from __future__ import annotations

import logging
import re

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from panel.dcdn.client import DcdnClient
from panel.dcdn.errors import DcdnError, Unauthorized

from .crypto import SecretUnreadable, decrypt_secret, encrypt_secret
from .errors import TokenMissing, TokenUnreadable
from .models import DcdnCredential, owner_key_for
from .signals import credential_changed

logger = logging.getLogger(__name__)

__all__ = [
    "credential_get",
    "credential_mark_invalid",
    "credential_remove",
    "credential_save",
    "credential_store_unverified",
    "dcdn_client_for",
    "owner_key_for",
    "token_clean",
]

TOKEN_MIN_LENGTH = 8
TOKEN_MAX_LENGTH = 512
# Printable ASCII without spaces: the token travels in an HTTP header, and a character
# requests refuses there would put the header value (the token) in its exception text.
_TOKEN_PATTERN = re.compile(r"[\x21-\x7e]+")

MESSAGE_REJECTED = (
    "DCDN rejected this token. Check that you copied all of it and that it is still active."
)
MESSAGE_UNVERIFIED = (
    "The token could not be verified right now (DCDN is busy or not answering). "
    "Nothing was saved; try again in a minute."
)


@sensitive_variables("token", "cleaned")
def token_clean(*, token: str) -> str:
    """The token without surrounding whitespace, or ValidationError (never quoting it)."""
    cleaned = (token or "").strip()
    if not cleaned:
        raise ValidationError("Enter your DCDN API token.", code="required")
    if len(cleaned) < TOKEN_MIN_LENGTH:
        raise ValidationError(
            "This is too short to be a DCDN API token; check that you copied all of it.",
            code="too_short",
        )
    if len(cleaned) > TOKEN_MAX_LENGTH:
        raise ValidationError(
            "This is too long to be a DCDN API token; paste only the token.", code="too_long"
        )
    if not _TOKEN_PATTERN.fullmatch(cleaned):
        raise ValidationError(
            "A DCDN API token has no spaces or special characters; paste only the token.",
            code="invalid",
        )
    return cleaned


def credential_get(*, user) -> DcdnCredential | None:
    if not getattr(user, "pk", None):
        return None
    return DcdnCredential.objects.filter(owner_id=user.pk).first()


@sensitive_variables("token")
def credential_save(*, user, token: str) -> DcdnCredential:
    """Verify the token with one cheap DCDN call, then store it encrypted.

    Raises ValidationError (code "rejected" or "unverified", or a format code) and stores
    nothing when the token cannot be shown to work.
    """
    token = token_clean(token=token)
    _token_verify(user=user, token=token)
    return _credential_store(user=user, token=token, verified=True)


@sensitive_variables("token")
def credential_store_unverified(*, user, token: str) -> DcdnCredential:
    """Store without asking DCDN (demo setup only: the simulator may not be running)."""
    token = token_clean(token=token)
    return _credential_store(user=user, token=token, verified=False)


def credential_remove(*, user) -> bool:
    deleted, _ = DcdnCredential.objects.filter(owner_id=user.pk).delete()
    if deleted:
        logger.info("DCDN token removed for %s", owner_key_for(user))
        credential_changed.send(
            sender=DcdnCredential, owner_key=owner_key_for(user), user=user, action="removed"
        )
    return bool(deleted)


def credential_mark_invalid(*, user, token_encrypted: str | None = None) -> bool:
    """Mark the stored token as rejected by DCDN. Idempotent: the first time wins.

    ``token_encrypted`` limits the change to that stored value, so a late 401 for a token
    the user has since replaced does not mark the new one.
    """
    rows = DcdnCredential.objects.filter(owner_id=user.pk, status=DcdnCredential.Status.VALID)
    if token_encrypted is not None:
        rows = rows.filter(token_encrypted=token_encrypted)
    now = timezone.now()
    changed = rows.update(status=DcdnCredential.Status.INVALID, invalid_since=now, updated_at=now)
    if changed:
        logger.warning("DCDN rejected the stored token of %s; marked invalid", owner_key_for(user))
        credential_changed.send(
            sender=DcdnCredential, owner_key=owner_key_for(user), user=user, action="invalidated"
        )
    return bool(changed)


@sensitive_variables("token")
def dcdn_client_for(user, *, max_wait: float | None = None) -> DcdnClient:
    """A client with the user's own token, budget and 401 handling.

    Raises TokenMissing (no token saved) or TokenUnreadable (no configured key can decrypt
    it); both are ``Unauthorized``. A token marked invalid still gets a client: the user
    may have fixed it upstream, and the banner already warns.
    """
    credential = (
        DcdnCredential.objects.filter(owner_id=getattr(user, "pk", None))
        .only("id", "owner_id", "token_encrypted")
        .first()
    )
    if credential is None:
        raise TokenMissing()
    try:
        token = decrypt_secret(credential.token_encrypted)
    except SecretUnreadable:
        logger.error(
            "The stored DCDN token of %s cannot be read with any key in "
            "TOKEN_ENCRYPTION_KEYS; it is not used.",
            owner_key_for(user),
        )
        raise TokenUnreadable() from None
    stored = credential.token_encrypted

    def on_unauthorized(*_args, **_kwargs) -> None:
        credential_mark_invalid(user=user, token_encrypted=stored)

    return DcdnClient(
        token=token,
        budget_key=owner_key_for(user),
        on_unauthorized=on_unauthorized,
        max_wait=max_wait,
    )


@sensitive_variables("token", "client")
def _token_verify(*, user, token: str) -> None:
    owner_key = owner_key_for(user)
    client = DcdnClient(token=token, budget_key=owner_key)
    try:
        client.list_regions()
    except Unauthorized:
        logger.info("DCDN rejected a token offered by %s", owner_key)
        raise ValidationError(MESSAGE_REJECTED, code="rejected") from None
    except DcdnError as exc:
        logger.info("Could not verify a token for %s: %s", owner_key, type(exc).__name__)
        raise ValidationError(MESSAGE_UNVERIFIED, code="unverified") from None
    except Exception as exc:
        # Anything else is a bug, but its text could quote the request (and so the token):
        # log only its type, and keep it out of the chain of the error the view sees.
        logger.error("Unexpected %s while verifying a token for %s", type(exc).__name__, owner_key)
        raise ValidationError(MESSAGE_UNVERIFIED, code="unverified") from None


@sensitive_variables("token")
def _credential_store(*, user, token: str, verified: bool) -> DcdnCredential:
    now = timezone.now()
    credential, _ = DcdnCredential.objects.update_or_create(
        owner=user,
        defaults={
            "token_encrypted": encrypt_secret(token),
            "last4": token[-4:],
            "status": DcdnCredential.Status.VALID,
            "verified_at": now if verified else None,
            "invalid_since": None,
        },
    )
    logger.info("DCDN token saved for %s (verified=%s)", owner_key_for(user), verified)
    credential_changed.send(
        sender=DcdnCredential, owner_key=owner_key_for(user), user=user, action="saved"
    )
    return credential
