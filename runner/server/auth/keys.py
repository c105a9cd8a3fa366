"""The server's signing keys (Ed25519, EdDSA) with rotation, and their public JWKS.

The keys live in ``<data dir>/signing_keys.json`` (mode 0600), newest first: the
newest signs, every kept key verifies, so tokens signed before a rotation stay valid
until they expire. A key older than the rotation period is replaced at startup or
at the next token issued; the file keeps the newest ``KEEP`` keys. Several server
processes share the file: a change is made under an exclusive lock, and a process
that meets a key id it does not know re-reads the file (it was rotated elsewhere).
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

KEY_FILE = "signing_keys.json"
#: keys kept for verification: the signing one and the ones it replaced.
KEEP = 3
ALGORITHM = "EdDSA"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_jwk(key: Ed25519PublicKey, kid: str) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64(_raw_public(key)),
        "kid": kid,
        "use": "sig",
        "alg": ALGORITHM,
    }


def thumbprint(key: Ed25519PublicKey) -> str:
    """The RFC 7638 JWK thumbprint, as the key id."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": _b64(_raw_public(key))}, separators=(",", ":"), sort_keys=True
    )
    return _b64(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey
    created_at: datetime

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @classmethod
    def generate(cls) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        return cls(thumbprint(private.public_key()), private, datetime.now(UTC))

    def to_json(self) -> dict[str, str]:
        pem = self.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return {"kid": self.kid, "created_at": self.created_at.isoformat(), "private_pem": pem.decode()}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> SigningKey:
        private = serialization.load_pem_private_key(data["private_pem"].encode(), password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"key {data.get('kid')}: not an Ed25519 key")
        return cls(data["kid"], private, datetime.fromisoformat(data["created_at"]))


class KeyRing:
    """The signing keys of one data directory; thread-safe."""

    def __init__(self, data_dir: Path, *, rotate_after: timedelta) -> None:
        self.path = Path(data_dir) / KEY_FILE
        self.rotate_after = rotate_after
        self._keys: list[SigningKey] = []
        self._mtime = 0.0
        self._lock = threading.Lock()
        #: unknown key ids re-read the file at most this often (they may be forged).
        self._reread_every = 1.0
        self._last_reread = 0.0

    # ---- life

    def load(self) -> KeyRing:
        """Read the keys, making the first one or rotating an old one as needed."""
        with self._lock:
            self._read()
            if not self._keys or self._due():
                self._rotate_locked(only_if_due=True)
        return self

    def rotate(self, *, keep_old: bool = True) -> str:
        """Put a new signing key in front (now, whatever the age of the current one);
        ``keep_old=False`` drops the others (a leaked key: every access token signed before
        is refused, and clients renew theirs, since refresh tokens and token secrets are
        not signed with these keys)."""
        with self._lock:
            return self._rotate_locked(only_if_due=False, keep_old=keep_old)

    # ---- use

    def signing_key(self) -> SigningKey:
        with self._lock:
            if self._due():
                self._rotate_locked(only_if_due=True)
            return self._keys[0]

    def public_key(self, kid: str) -> Ed25519PublicKey | None:
        with self._lock:
            key = self._find(kid)
            now = time.monotonic()
            if key is None and now - self._last_reread >= self._reread_every:
                self._last_reread = now
                self._read()
                key = self._find(kid)
            return key.public if key else None

    def knows(self, kid: str) -> bool:
        return self.public_key(kid) is not None

    def jwks(self) -> dict[str, Any]:
        with self._lock:
            if self._file_changed():
                self._read()
            return {"keys": [public_jwk(k.public, k.kid) for k in self._keys]}

    def kids(self) -> list[str]:
        with self._lock:
            return [k.kid for k in self._keys]

    # ---- inside the lock

    def _find(self, kid: str) -> SigningKey | None:
        return next((k for k in self._keys if k.kid == kid), None)

    def _due(self) -> bool:
        return not self._keys or datetime.now(UTC) - self._keys[0].created_at >= self.rotate_after

    def _file_changed(self) -> bool:
        try:
            return self.path.stat().st_mtime != self._mtime
        except FileNotFoundError:
            return bool(self._keys)

    def _read(self) -> None:
        try:
            raw = json.loads(self.path.read_text())
            self._mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._keys = []
            return
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot read the signing keys {self.path}: {exc}") from None
        self._keys = [SigningKey.from_json(item) for item in raw.get("keys", [])]

    def _rotate_locked(self, *, only_if_due: bool, keep_old: bool = True) -> str:
        with self._file_lock():
            self._read()  # another process may have rotated already
            if only_if_due and not self._due():
                return self._keys[0].kid
            new = SigningKey.generate()
            self._keys = [new, *self._keys][:KEEP] if keep_old else [new]
            self._write()
            return new.kid

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self) -> None:
        text = json.dumps({"keys": [k.to_json() for k in self._keys]}, indent=1)
        # mkstemp makes the file 0600: the private keys are never readable by others.
        fd, tmp = tempfile.mkstemp(prefix=".signing-keys-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._mtime = self.path.stat().st_mtime
