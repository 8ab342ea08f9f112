"""Errors the accounts app raises to other apps.

Both are ``Unauthorized`` so that the one DCDN error helper already sends the user to the
token page for them, exactly as for a token DCDN rejected.
"""

from __future__ import annotations

from panel.dcdn.errors import Unauthorized


class TokenMissing(Unauthorized):
    default_message = "No DCDN API token is saved for your account."


class TokenUnreadable(Unauthorized):
    """The stored token cannot be decrypted with any configured key (it is never sent)."""

    default_message = "Your saved DCDN API token can no longer be read; save it again."
