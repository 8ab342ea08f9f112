"""Encryption at rest for secrets the panel must keep (DCDN tokens, one-time passwords).

Keys come from ``settings.TOKEN_ENCRYPTION_KEYS`` (newest first), never from SECRET_KEY.
Encryption always uses the newest key; decryption tries every key, so a new key can be
added first and the old one removed after ``manage.py rotate_token_keys``.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables


class SecretUnreadable(Exception):
    """No configured key can decrypt this ciphertext (wrong key, removed key, corrupt)."""

    def __init__(self, message: str = "No key in TOKEN_ENCRYPTION_KEYS can read this secret."):
        super().__init__(message)


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    # Cached per key tuple, so tests that override the setting get a matching instance.
    if not keys:
        raise ImproperlyConfigured("TOKEN_ENCRYPTION_KEYS is empty; at least one key is needed.")
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except (ValueError, TypeError):
        # Never echo the key material in the message.
        raise ImproperlyConfigured(
            "TOKEN_ENCRYPTION_KEYS holds a value that is not a Fernet key "
            "(32 url-safe base64-encoded bytes)."
        ) from None


def _fernet() -> MultiFernet:
    keys = tuple(
        key.decode() if isinstance(key, bytes) else str(key)
        for key in settings.TOKEN_ENCRYPTION_KEYS
    )
    return _multifernet(keys)


@sensitive_variables("plaintext")
def encrypt_secret(plaintext: str) -> str:
    """Ciphertext (ASCII text) of ``plaintext`` under the newest key."""
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


@sensitive_variables("plaintext")
def decrypt_secret(ciphertext: str) -> str:
    """The plaintext; raises ``SecretUnreadable`` rather than ever returning ciphertext."""
    try:
        plaintext = _fernet().decrypt(ciphertext.encode("ascii"))
    except (InvalidToken, UnicodeEncodeError, TypeError, AttributeError):
        raise SecretUnreadable() from None
    return plaintext.decode()


def rotate_secret(ciphertext: str) -> str:
    """The same secret re-encrypted under the newest key; ``SecretUnreadable`` if no key
    can read it."""
    try:
        return _fernet().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeEncodeError, TypeError, AttributeError):
        raise SecretUnreadable() from None


# Short-lived secrets other apps keep with ``encrypt_secret`` (model label, field name).
# ``rotate_token_keys`` re-encrypts them too; one that no key can read is wiped, since
# its owner can always ask DCDN for a new one (e.g. reset the root password).
_SHORT_LIVED_SECRET_FIELDS: list[tuple[str, str]] = []


def register_short_lived_secret(model_label: str, field_name: str) -> None:
    if (model_label, field_name) not in _SHORT_LIVED_SECRET_FIELDS:
        _SHORT_LIVED_SECRET_FIELDS.append((model_label, field_name))


def short_lived_secret_fields() -> list[tuple[str, str]]:
    return list(_SHORT_LIVED_SECRET_FIELDS)
