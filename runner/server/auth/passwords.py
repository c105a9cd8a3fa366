"""Passwords: argon2 hashes and the minimum policy a new password must meet.

The policy follows NIST SP 800-63B: a minimum length, no composition rules, and a
refusal of passwords everyone tries first (a short list shipped here), of a single
repeated character, of a straight run (``12345678...``) and of the account's name.
"""

from __future__ import annotations

import functools
import itertools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when an account has no password or does not exist, so a wrong
    name costs as much as a wrong password (no user enumeration by timing). Made on
    first use: an argon2 hash is 0.2 s of CPU, which every server start paid."""
    return _hasher.hash("not-a-real-password")

#: Passwords at the top of every leaked-password list that are long enough to pass
#: the length rule (shorter ones are refused by length already).
COMMON = frozenset(
    [
        "1234567890",
        "0987654321",
        "1q2w3e4r5t",
        "1qaz2wsx3edc",
        "qwertyuiop",
        "qwerty1234",
        "qwerty12345",
        "password12",
        "password123",
        "password1234",
        "passw0rd123",
        "iloveyou123",
        "abcdefghij",
        "abc1234567",
        "letmein123",
        "welcome123",
        "admin12345",
        "administrator",
        "changeme123",
        "trustno1234",
        "football123",
        "baseball123",
        "sunshine123",
        "superman123",
        "princess123",
        "qazwsxedcr",
        "zaq12wsxcde",
        "1234qwerasdf",
        "asdfghjkl1",
        "asdfghjkl;",
        "q1w2e3r4t5",
        "1111111111",
        "0000000000",
        "987654321a",
        "123123123123",
        "123456789a",
        "a123456789",
        "123456789q",
        "password!",
        "password!!",
        "p@ssw0rd123",
        "mypassword",
        "mypassword1",
        "secret1234",
        "1234abcd!!",
        "11223344556",
        "0123456789",
    ]
)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an empty or missing hash never matches."""
    try:
        if not password_hash:
            _hasher.verify(_dummy_hash(), password)
            return False
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _is_run(text: str) -> bool:
    """A straight run of characters, up or down: ``123456789``, ``abcdefghij``, ``987654321``."""
    steps = {ord(b) - ord(a) for a, b in itertools.pairwise(text)}
    return len(steps) == 1 and steps <= {1, -1}


def policy_problem(password: str, username: str, min_length: int) -> str | None:
    """Why ``password`` is refused for ``username`` (None: it is acceptable)."""
    if len(password) < min_length:
        return f"at least {min_length} characters, got {len(password)}"
    folded = password.casefold()
    if folded in COMMON:
        return "this password is on the list of the most common passwords; choose another"
    if len(set(folded)) == 1 or _is_run(folded):
        return "a single repeated character or a straight run (12345..., abcde...) is too easy to guess"
    if username and username.casefold() in folded:
        return "the password must not contain the username"
    return None
