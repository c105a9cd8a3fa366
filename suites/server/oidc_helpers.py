"""A real OpenID Connect provider for the SSO tests: npm ``oidc-provider`` under Node.

``ci/test`` installs it (``npm ci`` in ci/oidc-provider, version pinned there); the
tests start one per need on 127.0.0.1 (``OIDCProviderProcess``), with RSA keys made
here, and sign in through its real device flow, filling its HTML forms the way a
person's browser would (``approve_device``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from harness.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = ROOT / "ci" / "oidc-provider"
SCRIPT = PROVIDER_DIR / "provider.mjs"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def provider_version() -> str | None:
    """The installed oidc-provider version, or None when ci/test has not installed it."""
    package = PROVIDER_DIR / "node_modules" / "oidc-provider" / "package.json"
    if not package.exists() or shutil.which("node") is None:
        return None
    return str(json.loads(package.read_text())["version"])


def rsa_jwk(kid: str) -> dict[str, Any]:
    """A new private RSA key as a JWK (what the provider signs with)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key))
    jwk.update(kid=kid, use="sig", alg="RS256")
    return jwk


def device_client(client_id: str) -> dict[str, Any]:
    return {
        "client_id": client_id,
        "client_name": f"{client_id} (test client)",
        "token_endpoint_auth_method": "none",
        "grant_types": [DEVICE_GRANT, "refresh_token"],
        "response_types": [],
        "redirect_uris": [],
    }


@dataclass
class ProviderConfig:
    port: int
    keys: list[dict[str, Any]]
    clients: list[str] = field(default_factory=lambda: ["tolu"])
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    id_token_ttl: int = 3600

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "port": self.port,
            "jwks": {"keys": self.keys},
            "clients": [device_client(c) for c in self.clients],
            "accounts": self.accounts,
            "idTokenTtl": self.id_token_ttl,
        }


class OIDCProviderProcess:
    """``node ci/oidc-provider/provider.mjs`` on 127.0.0.1, started and stopped by PID."""

    def __init__(self, config: ProviderConfig, workdir: Path) -> None:
        self.config = config
        self.workdir = workdir
        self.log_path = workdir / f"oidc-provider-{config.port}.log"
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()

    @property
    def issuer(self) -> str:
        return self.config.issuer

    def start(self) -> OIDCProviderProcess:
        path = self.workdir / f"oidc-provider-{self.config.port}.json"
        path.write_text(json.dumps(self.config.to_json()))
        node = shutil.which("node") or "node"
        log = self.log_path.open("a")
        self._proc = subprocess.Popen(
            [node, str(SCRIPT), str(path)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env={**os.environ, "NODE_ENV": "test"},
        )
        proc = self._proc

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.write(line)
                log.flush()
                if line.startswith("ready"):
                    self._ready.set()

        threading.Thread(target=read, daemon=True).start()
        wait_until(
            lambda: self._ready.is_set() or proc.poll() is not None,
            timeout=60,
            what=f"oidc-provider on port {self.config.port} to listen",
        )
        if not self._ready.is_set():
            raise RuntimeError(f"oidc-provider exited: {self.log_path.read_text()[-2000:]}")
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, keys: list[dict[str, Any]] | None = None) -> None:
        """Stop, change the keys (rotation: the first one signs), start again on the same port."""
        self.stop()
        if keys is not None:
            self.config.keys = keys
        self._ready.clear()
        self.start()

    # ---- the provider's own device flow, as a person and a device would use it

    def discovery(self) -> dict[str, Any]:
        body: dict[str, Any] = requests.get(
            self.issuer + "/.well-known/openid-configuration", timeout=10
        ).json()
        return body

    def start_device(
        self, client_id: str = "tolu", scope: str = "openid email profile groups"
    ) -> dict[str, Any]:
        resp = requests.post(
            self.discovery()["device_authorization_endpoint"],
            data={"client_id": client_id, "scope": scope},
            timeout=10,
        )
        resp.raise_for_status()
        body: dict[str, Any] = resp.json()
        return body

    def poll_device(self, device_code: str, client_id: str = "tolu") -> dict[str, Any]:
        resp = requests.post(
            self.discovery()["token_endpoint"],
            data={"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id},
            timeout=10,
        )
        body: dict[str, Any] = resp.json()
        return body

    def id_token(self, account: str, client_id: str = "tolu") -> str:
        """Sign ``account`` in through the device flow of ``client_id``; its ID token."""
        grant = self.start_device(client_id)
        approve_device(grant["verification_uri_complete"], grant["user_code"], account)
        body = self.poll_device(grant["device_code"], client_id)
        assert "id_token" in body, body
        return str(body["id_token"])


class _Forms(HTMLParser):
    """The forms of a page: action and the inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action") or "", "inputs": {}})
        elif tag in ("input", "button") and self.forms and a.get("name") and tag == "input":
            self.forms[-1]["inputs"][a["name"]] = a.get("value") or ""


def approve_device(url: str, user_code: str, account: str, *, max_pages: int = 10) -> None:
    """What a person does in the browser: open the verification page, enter the code,
    confirm, sign in as ``account``, consent; fails if the provider does not end on success."""
    session = requests.Session()
    page = session.get(url, timeout=10)
    for _ in range(max_pages):
        page.raise_for_status()
        if "Sign-in Success" in page.text:
            return
        parser = _Forms()
        parser.feed(page.text)
        if not parser.forms:
            raise AssertionError(f"no form and no success at {page.url}:\n{page.text[-1500:]}")
        form = parser.forms[0]
        data = dict(form["inputs"])
        data.pop("abort", None)
        if "user_code" in data and not data["user_code"]:
            data["user_code"] = user_code
        if "login" in data or data.get("prompt") == "login":
            data.update(login=account, password="any")
        page = session.post(urljoin(page.url, form["action"]), data=data, timeout=10)
    raise AssertionError(f"the provider's device pages did not end in success: {page.url}")
