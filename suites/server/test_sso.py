"""Single sign-on against a real OpenID Connect provider (npm oidc-provider on 127.0.0.1):
`tolu login --sso` through the provider's device flow, claims to accounts and roles, and
refusal of tokens with the wrong audience, the wrong issuer, an expired one, or one
signed by an unknown key; a rotated provider key is picked up."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import isolation_matrix as matrix
import jwt
import pytest
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from oidc_helpers import OIDCProviderProcess, ProviderConfig, approve_device, provider_version, rsa_jwk

from harness.waiting import wait_until
from runner.client import Client
from runner.server.process import ServerProcess, free_port

TOLU = [sys.executable, "-c", "from runner.cli.main import cli; cli()"]
ACCOUNTS = {
    "alice": {
        "email": "alice@example.org",
        "email_verified": True,
        "preferred_username": "alice",
        "groups": ["hpc", "tolu-admins"],
    },
    "bob": {
        "email": "bob@example.org",
        "email_verified": True,
        "preferred_username": "bob",
        "groups": ["hpc"],
    },
}


@pytest.fixture(scope="module")
def keys() -> list[dict[str, Any]]:
    return [rsa_jwk("key-1")]


def _provider(tmp: Path, keys: list[dict[str, Any]], **config: Any) -> OIDCProviderProcess:
    if provider_version() is None:
        message = "npm oidc-provider is not installed in ci/oidc-provider (./ci/test installs it with npm ci)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    cfg = ProviderConfig(
        port=free_port(), keys=list(keys), clients=["tolu", "other"], accounts=ACCOUNTS, **config
    )
    return OIDCProviderProcess(cfg, tmp).start()


@pytest.fixture(scope="module")
def provider(
    tmp_path_factory: pytest.TempPathFactory, keys: list[dict[str, Any]]
) -> Iterator[OIDCProviderProcess]:
    p = _provider(tmp_path_factory.mktemp("oidc"), keys)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, provider: OIDCProviderProcess
) -> Iterator[ServerProcess]:
    env = {
        "TOLU_OIDC_ISSUER": provider.issuer,
        "TOLU_OIDC_CLIENT_ID": "tolu",
        "TOLU_OIDC_SCOPES": "openid profile email groups",
        "TOLU_OIDC_ADMIN_GROUP": "tolu-admins",
        "TOLU_OIDC_LEEWAY": "0",
        "TOLU_OIDC_JWKS_MIN_REFRESH": "0",
    }
    s = ServerProcess(tmp_path_factory.mktemp("sso-server"), env=env)
    s.start(timeout=90)
    yield s
    s.stop()


def _me(url: str, token: str) -> requests.Response:
    return requests.get(url + "/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _refused(url: str, token: str, why: str) -> None:
    resp = _me(url, token)
    assert resp.status_code == 401, resp.text
    assert why in resp.json()["detail"], resp.json()


def test_provider_version_is_the_pinned_one() -> None:
    pinned = (Path(__file__).resolve().parents[2] / "ci" / "oidc-provider" / "package.json").read_text()
    version = provider_version()
    if version is None:
        pytest.skip("oidc-provider is not installed")
    assert f'"oidc-provider": "{version}"' in pinned


def test_tolu_login_sso(server: ServerProcess, provider: OIDCProviderProcess, tmp_path: Path) -> None:
    config = tmp_path / "sso.yaml"
    proc = subprocess.Popen(
        [*TOLU, "login", "--sso", "--url", server.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TOLU_CONFIG": str(config)},
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        lines.extend(proc.stdout)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    found = wait_until(
        lambda: re.search(r"open (\S+)\n.*enter the code (\S+)", "".join(lines), re.S),
        timeout=60,
        what="the provider's code",
    )
    url, code = found.group(1), found.group(2)
    assert url.startswith(provider.issuer + "/device")
    approve_device(url, code, "alice")  # the person, in the provider's pages
    proc.wait(timeout=120)
    reader.join(timeout=30)
    assert proc.stderr is not None
    assert proc.returncode == 0, proc.stderr.read()
    assert "Logged in as alice" in "".join(lines)
    listed = subprocess.run(
        [*TOLU, "token", "ls", "--logins", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "TOLU_CONFIG": str(config)},
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert '"via": "sso"' in listed.stdout
    me = _me(server.url, yaml.safe_load(config.read_text())["token"])
    assert me.json()["role"] == "admin" and me.json()["email"] == "alice@example.org"  # group claim -> role


def test_a_provider_token_is_accepted_as_bearer_and_claims_make_the_account(
    server: ServerProcess, provider: OIDCProviderProcess
) -> None:
    token = provider.id_token("bob")
    me = _me(server.url, token)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "bob" and me.json()["role"] == "user"
    assert me.json()["email"] == "bob@example.org"
    assert _me(server.url, provider.id_token("bob")).json()["id"] == me.json()["id"], "found again by subject"


def test_a_provider_token_signs_in_through_a_launchers_request(
    server: ServerProcess, provider: OIDCProviderProcess
) -> None:
    """The launchers' requests check the caller in their own transaction
    (runner/server/hotpath.py): a provider's first sign-in there makes the account with
    the work, or not at all when the work is refused."""
    token = provider.id_token("carol")
    auth = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    gone = requests.post(f"{server.url}/sessions/999999/heartbeat", data=b"", headers=auth, timeout=30)
    assert gone.status_code == 404, gone.text
    client = Client(server.url, token)  # the account made here, at its first request
    site = client.sites.create(name="carol-site", path="/tmp/carol", hostname="h")
    session = client.sessions.create(site.id)
    for operation, body in [("heartbeat", b""), ("acquire", b'{"max_num_jobs": 1}'), ("reports", b"[]")]:
        url = f"{server.url}/sessions/{session.id}/{operation}"
        resp = requests.post(url, data=body, headers=auth, timeout=30)
        assert resp.status_code == 200, (operation, resp.text)
    assert _me(server.url, token).json()["username"] == "carol"


def test_a_token_for_another_audience_is_refused(
    server: ServerProcess, provider: OIDCProviderProcess
) -> None:
    token = provider.id_token("alice", client_id="other")
    assert jwt.decode(token, options={"verify_signature": False})["aud"] == "other"
    _refused(server.url, token, "wrong audience")


def test_a_token_of_another_issuer_is_refused(
    server: ServerProcess, keys: list[dict[str, Any]], tmp_path: Path
) -> None:
    # Another provider with the same keys: the signature verifies, only the issuer differs.
    other = _provider(tmp_path, keys)
    try:
        token = other.id_token("alice")
    finally:
        other.stop()
    _refused(server.url, token, "wrong issuer")


def test_an_expired_token_is_refused(server: ServerProcess, provider: OIDCProviderProcess) -> None:
    provider.config.id_token_ttl = 2  # the same provider (same issuer), for a moment with short tokens
    provider.restart()
    try:
        token = provider.id_token("alice")
    finally:
        provider.config.id_token_ttl = 3600
        provider.restart()
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    wait_until(lambda: time.time() > exp + 1, timeout=30, what="the ID token to expire")
    _refused(server.url, token, "expired")


def test_a_token_signed_by_an_unknown_key_is_refused(
    server: ServerProcess, provider: OIDCProviderProcess
) -> None:
    real = jwt.decode(provider.id_token("alice"), options={"verify_signature": False})
    now = datetime.now(UTC)
    claims = {**real, "iat": now, "exp": now + timedelta(minutes=5)}
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "not-a-provider-key"})
    _refused(server.url, forged, "unknown key")
    # a key id the provider does publish, but not its key: a bad signature
    forged = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": "key-1"})
    _refused(server.url, forged, "bad signature")
    # and no symmetric algorithm, whatever the secret
    forged = jwt.encode(claims, "a-guessable-secret-" * 3, algorithm="HS256", headers={"kid": "key-1"})
    _refused(server.url, forged, "algorithm")


def test_a_rotated_provider_key_is_picked_up(
    server: ServerProcess, provider: OIDCProviderProcess, keys: list[dict[str, Any]]
) -> None:
    before = provider.id_token("alice")
    assert _me(server.url, before).status_code == 200
    new = rsa_jwk("key-2")
    provider.restart([new, *keys])  # the provider now signs with key-2 and still publishes key-1
    after = provider.id_token("alice")
    assert jwt.get_unverified_header(after)["kid"] == "key-2"
    assert _me(server.url, after).status_code == 200, "tolu refetched the provider's keys"
    assert _me(server.url, before).status_code == 200, "tokens signed before the rotation stay valid"
    provider.restart(keys)  # the other tests of this module expect key-1


@pytest.mark.parametrize("kind", ["SSO user", "SSO token of another user"])
def test_every_endpoint_answers_sso_credentials(
    kind: str, server: ServerProcess, provider: OIDCProviderProcess
) -> None:
    owner = matrix.Caller(server.url, provider.id_token("alice"))
    profile = "owner" if kind == "SSO user" else "stranger"
    stranger = provider.id_token("bob")

    def caller_for(world: matrix.World) -> matrix.Caller:
        return owner if profile == "owner" else matrix.Caller(server.url, stranger)

    outcome = matrix.run(owner, kind, profile, caller_for)
    # alice is an admin (group claim): the admin endpoints answer her
    expected_admin = {("GET /admin/users", 200)} if profile == "owner" else set()
    wrong = [
        line
        for line in outcome.rows
        if line[2] != line[3]
        and (line[1], line[3]) not in expected_admin
        and not (profile == "owner" and line[1] == "PATCH /admin/users/{owner_id}" and line[3] == 409)
    ]
    assert wrong == [], "\n".join(map(str, wrong))
