"""Sent after a stored token changes, so other apps can drop what they cached for its
owner (instance snapshots, earnings). Arguments: ``owner_key``, ``user``, ``action``
("saved", "removed" or "invalidated"). Never the token."""

from django.dispatch import Signal

credential_changed = Signal()
