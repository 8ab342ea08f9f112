from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from accounts.crypto import SecretUnreadable, decrypt_secret, encrypt_secret, rotate_secret

SECRET = "root-password-Zq81!"


def test_round_trip_and_ciphertext_does_not_contain_the_plaintext():
    ciphertext = encrypt_secret(SECRET)
    assert SECRET not in ciphertext
    assert decrypt_secret(ciphertext) == SECRET


def test_each_encryption_is_different():
    assert encrypt_secret(SECRET) != encrypt_secret(SECRET)


def test_unknown_key_raises_and_never_returns_ciphertext(settings):
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    ciphertext = encrypt_secret(SECRET)
    settings.TOKEN_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(SecretUnreadable):
        decrypt_secret(ciphertext)
    with pytest.raises(SecretUnreadable):
        rotate_secret(ciphertext)


@pytest.mark.parametrize("garbage", ["", "not-a-fernet-token", "ünïcode"])
def test_garbage_raises_secret_unreadable(garbage):
    with pytest.raises(SecretUnreadable):
        decrypt_secret(garbage)


def test_old_key_still_decrypts_and_rotation_moves_to_the_newest(settings):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.TOKEN_ENCRYPTION_KEYS = [old]
    ciphertext = encrypt_secret(SECRET)
    settings.TOKEN_ENCRYPTION_KEYS = [new, old]
    assert decrypt_secret(ciphertext) == SECRET
    rotated = rotate_secret(ciphertext)
    settings.TOKEN_ENCRYPTION_KEYS = [new]
    assert decrypt_secret(rotated) == SECRET
    with pytest.raises(SecretUnreadable):
        decrypt_secret(ciphertext)


def test_encryption_key_is_not_derived_from_secret_key(settings):
    ciphertext = encrypt_secret(SECRET)
    settings.SECRET_KEY = "something-else-entirely-" * 3
    assert decrypt_secret(ciphertext) == SECRET
