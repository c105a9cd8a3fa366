"""Passwords: argon2 hashes and the minimum policy a new password must meet.

The policy follows NIST SP 800-63B: a minimum length, no composition rules, and a
refusal of passwords everyone tries first (a short list shipped here), of a single
repeated character, of a straight run (``12345678...``) and of the account's name.
"""

from __future__ import annotations

import functools
import itertools
import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


@dataclass(frozen=True)
class HashCost:
    """What one argon2id hash costs: memory (KiB), passes over it, lanes.

    The default is RFC 9106's second recommended option (64 MiB, 3 passes, 4 lanes;
    argon2-cffi's own default): about 0.2 s of CPU per hash. A hash keeps the cost it
    was made with, so a changed cost applies to new passwords, and to an old one at
    its next login (``needs_rehash``). Written as in the hash itself: ``m=65536,t=3,p=4``.
    """

    memory_kib: int = 65536
    passes: int = 3
    lanes: int = 4

    def __post_init__(self) -> None:
        if self.passes < 1 or self.lanes < 1 or self.memory_kib < 8 * self.lanes:
            raise ValueError(f"{self}: argon2 needs t >= 1, p >= 1 and m >= 8 * p")

    def __str__(self) -> str:
        return f"m={self.memory_kib},t={self.passes},p={self.lanes}"

    @classmethod
    def parse(cls, text: str) -> HashCost:
        """``m=65536,t=3,p=4`` (any order; a letter left out keeps its default)."""
        values: dict[str, int] = {}
        for part in text.split(","):
            found = re.fullmatch(r"\s*([mtp])\s*=\s*(\d+)\s*", part)
            if found is None or found[1] in values:
                raise ValueError(f"{text!r}: expected m=<KiB>,t=<passes>,p=<lanes>, as m=65536,t=3,p=4")
            values[found[1]] = int(found[2])
        default = cls()
        return cls(
            memory_kib=values.get("m", default.memory_kib),
            passes=values.get("t", default.passes),
            lanes=values.get("p", default.lanes),
        )


@functools.cache
def _hasher(cost: HashCost) -> PasswordHasher:
    return PasswordHasher(time_cost=cost.passes, memory_cost=cost.memory_kib, parallelism=cost.lanes)


@functools.cache
def _dummy_hash(cost: HashCost) -> str:
    """Verified against when an account has no password or does not exist, so a wrong
    name costs as much as a wrong password (no user enumeration by timing). Made on
    first use: an argon2 hash is 0.2 s of CPU, which every server start paid."""
    return _hasher(cost).hash("not-a-real-password")

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


def hash_password(password: str, cost: HashCost) -> str:
    return _hasher(cost).hash(password)


def verify_password(password_hash: str | None, password: str, cost: HashCost) -> bool:
    """True when ``password`` matches; an empty or missing hash never matches (and costs
    as much to find out: ``cost`` is what a hash of this server costs)."""
    try:
        if not password_hash:
            _hasher(cost).verify(_dummy_hash(cost), password)
            return False
        return _hasher(cost).verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str, cost: HashCost) -> bool:
    """True when ``password_hash`` was made with another cost than ``cost``."""
    try:
        return _hasher(cost).check_needs_rehash(password_hash)
    except InvalidHashError:
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
