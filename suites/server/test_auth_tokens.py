"""tolu's own tokens: EdDSA signatures and the JWKS, lifetimes, rotating refresh tokens,
scoped tokens stored hashed, revocation at the next request, key rotation, the client
renewing on its own."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import requests
from auth_helpers import auth_server, create_token, exchange, post_token, register_login, revoke

from harness.waiting import wait_until
from runner.client import Client
from runner.client.auth import TokenCredential
from runner.client.errors import AuthError
from runner.server.auth.keys import KeyRing
from runner.server.auth.principal import Scope
from runner.server.auth.tokens import AccessTokens
from runner.server.db import make_engine
from runner.server.errors import Unauthorized

TOLU = [sys.executable, "-c", "from runner.cli.main import cli; cli()"]


def _me(url: str, access: str) -> requests.Response:
    return requests.get(url + "/users/me", headers={"Authorization": f"Bearer {access}"}, timeout=30)


def test_access_tokens_are_eddsa_and_verify_with_the_published_keys(tolu_client: Client) -> None:
    access = tolu_client.token or ""
    header = jwt.get_unverified_header(access)
    assert header["alg"] == "EdDSA"
    jwks = requests.get(tolu_client.url + "/.well-known/jwks.json", timeout=30).json()
    keys = {k["kid"]: k for k in jwks["keys"]}
    assert header["kid"] in keys and keys[header["kid"]]["crv"] == "Ed25519"
    public = jwt.PyJWK.from_dict(keys[header["kid"]]).key
    claims = jwt.decode(access, public, algorithms=["EdDSA"], audience="tolu")
    assert claims["name"] == tolu_client.username and claims["scope"] == "full"
    # the same token with a forged signature is refused
    head, body, sig = access.split(".")
    forged = f"{head}.{body}.{sig[:-4]}AAAA"
    assert _me(tolu_client.url, forged).status_code == 401
    assert _me(tolu_client.url, access).status_code == 200


def test_an_hs256_token_signed_with_a_guessable_secret_is_refused(tolu_client: Client) -> None:
    claims = jwt.decode(tolu_client.token or "", options={"verify_signature": False})
    kid = jwt.get_unverified_header(tolu_client.token or "")["kid"]
    forged = jwt.encode(claims, "a-guessable-secret-" * 3, algorithm="HS256", headers={"kid": kid})
    resp = _me(tolu_client.url, forged)
    assert resp.status_code == 401 and "invalid token" in resp.json()["detail"]


def test_refresh_tokens_rotate_and_a_reused_one_ends_the_login(tmp_path: Path) -> None:
    with auth_server(tmp_path, {"TOLU_REFRESH_REUSE_GRACE": "0"}) as server:
        url = server.url
        first = register_login(url)
        second = post_token(url, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
        assert second["refresh_token"] != first["refresh_token"]
        assert second["access_token"] != first["access_token"]
        assert _me(url, second["access_token"]).status_code == 200
        # the first refresh token was used: using it again means a copy exists
        reuse = post_token(url, grant_type="refresh_token", refresh_token=first["refresh_token"])
        assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
        assert "reused" in reuse.json()["error_description"]
        # ... so the whole login ends, its access tokens at their next request
        assert _me(url, second["access_token"]).status_code == 401
        later = post_token(url, grant_type="refresh_token", refresh_token=second["refresh_token"])
        assert later.status_code == 400 and "revoked" in later.json()["error_description"]


def test_a_refresh_token_used_twice_within_the_grace_still_works(tolu_client: Client) -> None:
    url = tolu_client.url
    first = register_login(url)
    a = post_token(url, grant_type="refresh_token", refresh_token=first["refresh_token"])
    b = post_token(url, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert a.status_code == b.status_code == 200  # two processes refreshing at once
    assert _me(url, a.json()["access_token"]).status_code == 200
    assert _me(url, b.json()["access_token"]).status_code == 200


def test_access_lifetime_is_a_setting_and_the_client_renews_through_expiries(tmp_path: Path) -> None:
    with auth_server(tmp_path, {"TOLU_ACCESS_TOKEN_TTL": "2"}) as server:
        url = server.url
        answer = register_login(url)
        assert answer["expires_in"] == 2
        raw = answer["access_token"]
        wait_until(lambda: _me(url, raw).status_code == 401, timeout=30, what="the 2-second token to expire")
        assert "expired" in _me(url, raw).json()["detail"]

        client = Client.login(url, answer["username"], answer["password"])
        path = client.save_config(tmp_path / "creds.yaml")
        seen = {client.token}
        # Many expiries: every call answers, none raises, and the tokens keep changing.
        for _ in range(6):
            first = client.token
            wait_until(
                lambda first=first: _me(url, first or "").status_code == 401, timeout=30, what="expiry"
            )
            assert client.me().username == answer["username"]
            seen.add(client.token)
        assert len(seen) >= 6
        # the renewals were written back, so a new process continues the same login
        again = Client.from_config(path)
        assert again.me().username == answer["username"]


def test_processes_sharing_a_credentials_file_renew_one_login(tmp_path: Path) -> None:
    """Several `tolu` processes with the same credentials file, after expiries, all succeed
    (the file lock lets one renew; the others take what it wrote) and the login survives."""
    with auth_server(tmp_path, {"TOLU_ACCESS_TOKEN_TTL": "2", "TOLU_REFRESH_REUSE_GRACE": "0"}) as server:
        answer = register_login(server.url)
        client = Client.login(server.url, answer["username"], answer["password"])
        path = client.save_config(tmp_path / "shared.yaml")
        env = {"TOLU_CONFIG": str(path), "PATH": "/usr/bin:/bin"}
        code = "from runner.client import Client; print(Client.from_config().me().username)"
        for _ in range(3):
            token = client.token or ""
            wait_until(
                lambda token=token: _me(server.url, token).status_code == 401, timeout=30, what="expiry"
            )
            procs = [
                subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
                for _ in range(4)
            ]
            outs = [p.communicate(timeout=120)[0].strip() for p in procs]
            assert [p.returncode for p in procs] == [0, 0, 0, 0]
            assert outs == [answer["username"]] * 4
            client = Client.from_config(path)
        assert client.me().username == answer["username"]


def test_scoped_tokens_are_stored_hashed_and_revoked_at_the_next_request(tmp_path: Path) -> None:
    with auth_server(tmp_path, {}) as server:
        url = server.url
        login = register_login(url)
        made = create_token(url, login["access_token"], name="dashboard", scope="read", expires_in_days=30)
        secret = made["token"]
        assert secret.startswith("tolu_at_") and made["hint"] == secret[:12]
        engine = make_engine(f"sqlite:///{server.data_dir / 'tolu.db'}")
        try:
            with engine.connect() as conn:
                rows = [tuple(map(str, r)) for r in conn.exec_driver_sql("SELECT * FROM grants")]
        finally:
            engine.dispose()
        assert not any(secret in value for row in rows for value in row), "the secret is stored"
        assert any(hashlib.sha256(secret.encode()).hexdigest() in row for row in rows)

        access = exchange(url, secret)
        assert _me(url, access).status_code == 200
        revoke(url, login["access_token"], made["id"])
        resp = _me(url, access)
        assert resp.status_code == 401 and resp.json()["detail"] == "token revoked"
        refused = post_token(url, grant_type="client_credentials", client_secret=secret)
        assert refused.status_code == 400 and "revoked" in refused.json()["error_description"]


def test_signing_keys_rotate_and_old_tokens_stay_valid(tmp_path: Path) -> None:
    with auth_server(tmp_path, {}) as server:
        url = server.url
        old = register_login(url)
        old_kid = jwt.get_unverified_header(old["access_token"])["kid"]
        ring = KeyRing(server.data_dir, rotate_after=timedelta(days=30))
        new_kid = ring.load().rotate()  # what `tolu server rotate-key` does, from another process
        kids = [k["kid"] for k in requests.get(url + "/.well-known/jwks.json", timeout=30).json()["keys"]]
        assert kids[:2] == [new_kid, old_kid]
        assert oct((server.data_dir / "signing_keys.json").stat().st_mode & 0o777) == "0o600"
        server.stop()
        server.start(timeout=90)
        fresh = register_login(url)
        assert jwt.get_unverified_header(fresh["access_token"])["kid"] == new_kid
        assert _me(url, old["access_token"]).status_code == 200, "a token signed before the rotation"


def test_a_remembered_token_is_refused_once_its_key_leaves_the_ring(tmp_path: Path) -> None:
    # the server remembers tokens it verified (their signature is costly to check at
    # every request); dropping the key that signed them must still refuse them
    ring = KeyRing(tmp_path, rotate_after=timedelta(days=30)).load()
    tokens = AccessTokens(ring, issuer="https://tolu.test", ttl=timedelta(minutes=5))
    token, _ = tokens.issue(user_id=1, username="u", grant_id=7, scope=Scope.FULL)
    assert tokens.decode(token).grant_id == 7
    assert tokens.decode(token).grant_id == 7  # remembered
    ring.rotate(keep_old=False)  # a leaked key
    with pytest.raises(Unauthorized, match="not signed by a key of this server"):
        tokens.decode(token)
    with pytest.raises(Unauthorized, match="invalid token"):
        tokens.decode(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))


def test_tolu_token_commands(tolu_client: Client, make_user: Callable[[], Client]) -> None:
    def tolu(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*TOLU, *args], capture_output=True, text=True, timeout=120)

    made = tolu("token", "create", "ci-reader", "--read-only", "--days", "7")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("tolu_at_") and "read-only" in made.stderr and "shown once" in made.stderr
    reader = Client(tolu_client.url, exchange(tolu_client.url, secret))
    assert reader.me().username == tolu_client.username
    with pytest.raises(AuthError, match="read-only"):
        reader.sites.create(name="nope", path="/x", hostname="h")

    listed = tolu("token", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [t for t in json.loads(listed.stdout) if t["name"] == "ci-reader"]
    assert row["scope"] == "read" and row["hint"] == secret[:12]
    assert "token" not in row, "the secret is listed"

    revoked = tolu("token", "revoke", str(row["id"]))
    assert revoked.returncode == 0 and "revoked token" in revoked.stdout
    with pytest.raises(AuthError, match="revoked"):
        reader.me()  # the access token it already had: refused at its next request
    with pytest.raises(AuthError, match="revoked"):
        Client(tolu_client.url, credential=TokenCredential(secret)).me()  # nor can it get another
    bad = tolu("token", "revoke", "999999")
    assert bad.returncode == 1 and bad.stderr.strip().count("\n") == 0 and "not found" in bad.stderr


def test_dropping_a_leaked_key_refuses_its_tokens_and_clients_renew(tmp_path: Path) -> None:
    with auth_server(tmp_path, {}) as server:
        answer = register_login(server.url)
        client = Client.login(server.url, answer["username"], answer["password"])
        before = client.token or ""
        done = subprocess.run(
            [*TOLU, "server", "rotate-key", "--drop-old", "--data-dir", str(server.data_dir)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0 and "keeping 0 older" in done.stdout, done.stderr
        server.stop()
        server.start(timeout=90)
        assert _me(server.url, before).status_code == 401, "a token signed with the dropped key"
        assert client.me().username == answer["username"], "the client renewed on its own"
        assert client.token != before
