"""Failed-login limits (per account, per address: 429 + Retry-After), the password policy,
case-insensitive usernames, audit events, the admin role."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests
from auth_helpers import auth_server, create_token, exchange, register_login

from runner.client import Client
from runner.client.errors import APIError, AuthError, Conflict, InvalidRequest


def _login(url: str, username: str, password: str) -> requests.Response:
    return requests.post(url + "/users/login", json={"username": username, "password": password}, timeout=30)


def test_failed_logins_are_limited_per_account(tmp_path: Path) -> None:
    env = {
        "TOLU_LOGIN_MAX_FAILURES": "5",
        "TOLU_LOGIN_MAX_FAILURES_PER_ADDRESS": "0",
        "TOLU_LOGIN_WINDOW": "600",
    }
    with auth_server(tmp_path, env) as server:
        url = server.url
        alice = register_login(url)
        bob = register_login(url)
        statuses = [_login(url, alice["username"], f"wrong-{i}").status_code for i in range(5)]
        assert statuses == [401] * 5
        # the sixth attempt is refused before the password is even checked: the right one too
        locked = _login(url, alice["username"], alice["password"])
        assert locked.status_code == 429
        wait = int(locked.headers["Retry-After"])
        assert 0 < wait <= 600
        assert (
            f"try again in {wait} s" in locked.json()["detail"] or "try again in" in locked.json()["detail"]
        )
        # other accounts are not affected; the name is matched without case
        assert _login(url, bob["username"], bob["password"]).status_code == 200
        assert _login(url, alice["username"].upper(), alice["password"]).status_code == 429
        # the client gives up at once instead of sleeping through Retry-After
        with pytest.raises(APIError) as err:
            Client.login(url, alice["username"], alice["password"], retries=3)
        assert err.value.status == 429 and "too many failed logins" in str(err.value)
        # and the owner sees the attempts
        events = Client(url, alice["access_token"]).account.audit(action="login.failed").results
        assert len(events) == 5 and all(e.address == "127.0.0.1" for e in events)


def test_failed_logins_are_limited_per_address(tmp_path: Path) -> None:
    env = {"TOLU_LOGIN_MAX_FAILURES": "100", "TOLU_LOGIN_MAX_FAILURES_PER_ADDRESS": "4"}
    with auth_server(tmp_path, env) as server:
        url = server.url
        alice = register_login(url)
        # one address trying many names (password spraying)
        assert [_login(url, f"name-{i}", "guess-guess-1").status_code for i in range(4)] == [401] * 4
        sprayed = _login(url, alice["username"], alice["password"])
        assert sprayed.status_code == 429 and "your address" in sprayed.json()["detail"]
        assert int(sprayed.headers["Retry-After"]) > 0


def test_the_limit_resets_after_a_successful_login(tmp_path: Path) -> None:
    env = {"TOLU_LOGIN_MAX_FAILURES": "3", "TOLU_LOGIN_MAX_FAILURES_PER_ADDRESS": "0"}
    with auth_server(tmp_path, env) as server:
        alice = register_login(server.url)
        for _ in range(2):
            assert _login(server.url, alice["username"], "nope-nope-nope").status_code == 401
        assert _login(server.url, alice["username"], alice["password"]).status_code == 200
        for _ in range(2):
            assert _login(server.url, alice["username"], "nope-nope-nope").status_code == 401
        assert _login(server.url, alice["username"], alice["password"]).status_code == 200


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("12345678", "at least 10 characters"),
        ("1234567890", "most common passwords"),
        ("aaaaaaaaaaaa", "single repeated character"),
        ("abcdefghijklm", "straight run"),
        ("{name}-is-my-password", "must not contain the username"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(tolu_client: Client, password: str, reason: str) -> None:
    name = f"weak-{secrets.token_hex(4)}"
    with pytest.raises(InvalidRequest) as err:
        Client.register(tolu_client.url, name, password.format(name=name))
    assert err.value.errors[0].loc == ("body", "password")
    assert reason in str(err.value)


def test_usernames_are_compared_without_case(tolu_client: Client) -> None:
    url = tolu_client.url
    name = f"Alice{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)
    user = Client.register(url, name, password)
    assert user.username == name  # the spelling is kept for display
    with pytest.raises(Conflict, match="compared without case"):
        Client.register(url, name.upper(), secrets.token_urlsafe(16))
    assert Client.login(url, name.lower(), password).me().id == user.id
    assert Client.login(url, name.upper(), password).me().username == name


def test_audit_events_list_logins_tokens_and_revocations(tolu_client: Client) -> None:
    url = tolu_client.url
    made = tolu_client.account.create_token("audited", scope="read")
    tolu_client.account.revoke(made.id)
    with pytest.raises(AuthError):
        Client.login(url, tolu_client.username or "", "wrong-password-here")
    actions = [e.action for e in tolu_client.account.audit().results]
    # newest first
    assert actions[:3] == ["login.failed", "token.revoked", "token.created"]
    assert "login.succeeded" in actions and "account.created" in actions


def test_an_admin_lists_and_disables_accounts(tmp_path: Path) -> None:
    with auth_server(tmp_path, {"TOLU_ADMIN_USERS": "root"}) as server:
        url = server.url
        root = register_login(url, "Root")
        bob = register_login(url)
        bob_token = exchange(url, create_token(url, bob["access_token"], scope="full")["token"])
        admin = Client(url, root["access_token"])
        assert admin.me().role == "admin"
        names = [u.username for u in admin.admin.users()]
        assert "Root" in names and bob["username"] in names

        # a plain user cannot
        with pytest.raises(AuthError, match="administrator"):
            Client(url, bob["access_token"]).admin.users()

        bob_id = Client(url, bob["access_token"]).me().id
        assert admin.admin.update_user(bob_id, disabled=True).disabled
        # every credential of bob is refused at its next request, a new login too
        for access in (bob["access_token"], bob_token):
            resp = requests.get(url + "/users/me", headers={"Authorization": f"Bearer {access}"}, timeout=30)
            assert resp.status_code == 403 and "disabled" in resp.json()["detail"]
        assert _login(url, bob["username"], bob["password"]).status_code == 401
        refresh = requests.post(
            url + "/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": bob["refresh_token"]},
            timeout=30,
        )
        assert refresh.status_code == 400 and "disabled" in refresh.json()["error_description"]

        admin.admin.update_user(bob_id, disabled=False)
        assert Client(url, bob["access_token"]).me().username == bob["username"]
        with pytest.raises(APIError, match="own account"):
            admin.admin.update_user(admin.me().id, disabled=True)
        # the changes are in bob's audit events
        actions = [e.action for e in Client(url, bob["access_token"]).account.audit().results]
        assert actions[:3] == ["account.enabled", "login.refused", "account.disabled"]
