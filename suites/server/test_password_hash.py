"""What a password hash costs is a setting (``TOLU_PASSWORD_HASH``), RFC 9106's by default.

The suites run their servers at argon2's lowest cost (the root conftest.py); here the
default is checked where it is made, a bad value stops the server in one line, and a
password hashed at another cost is rehashed at the server's own at its next login.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from auth_helpers import auth_server, register_login

from runner.server.auth.passwords import HashCost, hash_password, needs_rehash, verify_password
from runner.server.auth.settings import AuthSettings, AuthSettingsError


def test_the_default_cost_is_rfc_9106s_and_each_hash_carries_its_own() -> None:
    cost = AuthSettings.from_env({}).password_hash
    assert cost == HashCost(memory_kib=65536, passes=3, lanes=4)
    made = hash_password("correct horse battery", cost)
    assert made.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert verify_password(made, "correct horse battery", cost)
    assert not verify_password(made, "correct horse batter", cost)
    assert not needs_rehash(made, cost)
    # a hash made at another cost still verifies, and is due for a rehash
    cheap = HashCost.parse("m=8,t=1,p=1")
    assert verify_password(made, "correct horse battery", cheap)
    assert needs_rehash(made, cheap)
    # no password (an SSO account) never matches
    assert not verify_password("", "correct horse battery", cheap)


@pytest.mark.parametrize(
    ("text", "cost"),
    [
        ("m=1024,t=2,p=1", HashCost(memory_kib=1024, passes=2, lanes=1)),
        ("p=2, m=64 ,t=5", HashCost(memory_kib=64, passes=5, lanes=2)),
        ("t=4", HashCost(memory_kib=65536, passes=4, lanes=4)),
    ],
)
def test_the_cost_is_read_from_the_environment(text: str, cost: HashCost) -> None:
    assert AuthSettings.from_env({"TOLU_PASSWORD_HASH": text}).password_hash == cost
    assert HashCost.parse(str(cost)) == cost


@pytest.mark.parametrize(
    "text", ["m=4,p=1", "t=0", "p=0", "x=1", "m=1024,m=2048", "m=abc", "fast", "m=8;t=1"]
)
def test_a_bad_cost_is_one_line_naming_the_variable(text: str) -> None:
    with pytest.raises(AuthSettingsError, match=r"^TOLU_PASSWORD_HASH: ") as caught:
        AuthSettings.from_env({"TOLU_PASSWORD_HASH": text})
    assert "\n" not in str(caught.value)


def test_a_server_with_a_bad_cost_does_not_start_and_says_why(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runner.server", "--data-dir", str(tmp_path), "--port", "0"],
        env={**os.environ, "TOLU_PASSWORD_HASH": "m=4,t=1,p=1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "tolu server: TOLU_PASSWORD_HASH: m=4,t=1,p=1: argon2 needs t >= 1, p >= 1 and m >= 8 * p"
    ]


def _stored_hash(data_dir: Path, username: str) -> str:
    with sqlite3.connect(data_dir / "tolu.db") as db:
        (found,) = db.execute("SELECT password_hash FROM users WHERE username = ?", (username,)).fetchone()
    return str(found)


def test_a_login_rehashes_a_password_made_at_another_cost(tmp_path: Path) -> None:
    with auth_server(tmp_path, {"TOLU_PASSWORD_HASH": "m=8,t=1,p=1"}) as server:
        made = register_login(server.url, "alice")
    assert _stored_hash(server.data_dir, "alice").startswith("$argon2id$v=19$m=8,t=1,p=1$")

    with auth_server(tmp_path, {"TOLU_PASSWORD_HASH": "m=16,t=2,p=1"}) as server:
        wrong = requests.post(
            server.url + "/users/login", json={"username": "alice", "password": "not-hers-at-all"}, timeout=30
        )
        assert wrong.status_code == 401, wrong.text
        assert _stored_hash(server.data_dir, "alice").startswith("$argon2id$v=19$m=8,t=1,p=1$")
        for _ in range(2):  # rehashed at the first login; the second verifies the new hash
            login = {"username": "alice", "password": made["password"]}
            resp = requests.post(server.url + "/users/login", json=login, timeout=30)
            assert resp.status_code == 200, resp.text
            assert _stored_hash(server.data_dir, "alice").startswith("$argon2id$v=19$m=16,t=2,p=1$")
