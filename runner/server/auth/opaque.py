"""Opaque secrets (API tokens, refresh tokens, device codes): made here, stored as SHA-256.

They are 256 random bits, so a plain SHA-256 is enough to store them (nobody can
guess one to test against the hash, unlike a password) and lets the server find a
row by its hash with one indexed lookup.
"""

from __future__ import annotations

import hashlib
import secrets

#: prefixes that make a leaked tolu secret recognisable (secret scanners, logs).
API_TOKEN = "tolu_at_"
REFRESH_TOKEN = "tolu_rt_"
DEVICE_CODE = "tolu_dc_"

#: RFC 8628 section 6.1: consonants only, no look-alikes, so a code is easy to type and
#: spells no words.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_user_code() -> str:
    """``BDFH-KLMN``: 8 characters of 20 (about 34 bits), typed by a person."""
    chars = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{chars[:4]}-{chars[4:]}"


def normal_user_code(text: str) -> str:
    """What a person typed (``bdfh klmn``, ``BDFHKLMN``) as the stored form ``BDFH-KLMN``."""
    chars = "".join(c for c in text.upper() if c.isalnum())
    return f"{chars[:4]}-{chars[4:]}" if len(chars) == 8 else chars
