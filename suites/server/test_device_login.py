"""Device-code login (RFC 8628) served by tolu: `tolu login --device`, approval by
`tolu login approve CODE` or the /device page, slow_down, expiry and denial."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests
import yaml
from auth_helpers import DEVICE_GRANT, auth_server, post_token, register_login

from harness.waiting import wait_until
from runner.client import device

TOLU = [sys.executable, "-c", "from runner.cli.main import cli; cli()"]
FAST = {"TOLU_DEVICE_POLL_INTERVAL": "1"}


class DeviceLogin:
    """`tolu login --device` running in the background, its output read as it comes."""

    def __init__(self, url: str, config: Path) -> None:
        env = {**os.environ, "TOLU_CONFIG": str(config)}
        self.proc = subprocess.Popen(
            [*TOLU, "login", "--device", "--url", url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def code(self) -> str:
        found = wait_until(
            lambda: re.search(r"enter the code (\w{4}-\w{4})", "".join(self.lines)),
            timeout=60,
            what="the code",
        )
        return str(found.group(1))

    def finish(self) -> tuple[int, str, str]:
        self.proc.wait(timeout=120)
        self.reader.join(timeout=30)  # every line the command printed
        assert self.proc.stderr is not None
        return self.proc.returncode, "".join(self.lines), self.proc.stderr.read()


def tolu(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOLU_CONFIG": str(config)}
    return subprocess.run([*TOLU, *args], capture_output=True, text=True, timeout=120, env=env)


def _save_login(tmp_path: Path, url: str, name: str) -> tuple[Path, dict[str, str]]:
    answer = register_login(url)
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "url": url,
                "username": answer["username"],
                "token": answer["access_token"],
                "refresh_token": answer["refresh_token"],
            }
        )
    )
    return path, answer


def test_device_login_approved_with_tolu_login_approve(tmp_path: Path) -> None:
    with auth_server(tmp_path, FAST) as server:
        alice_config, alice = _save_login(tmp_path, server.url, "alice")
        device = DeviceLogin(server.url, tmp_path / "device.yaml")
        code = device.code()
        text = "".join(device.lines)
        assert f"{server.url}/device?user_code={code}" in text and f"tolu login approve {code}" in text
        approved = tolu(alice_config, "login", "approve", code.lower().replace("-", " "))
        assert approved.returncode == 0, approved.stderr
        assert f"Approved: the device with code {code}" in approved.stdout
        rc, out, err = device.finish()
        assert rc == 0, err
        assert f"Logged in as {alice['username']}" in out
        # the device now holds a login of alice that works and renews
        whoami = tolu(tmp_path / "device.yaml", "token", "ls", "--logins", "--json")
        assert whoami.returncode == 0, whoami.stderr
        assert any(t["via"] == "device" for t in json.loads(whoami.stdout))
        audit = tolu(alice_config, "audit", "ls", "--action", "device.approved", "--json")
        assert code in audit.stdout


def test_device_login_denied_is_one_clear_line(tmp_path: Path) -> None:
    with auth_server(tmp_path, FAST) as server:
        alice_config, _ = _save_login(tmp_path, server.url, "alice")
        device = DeviceLogin(server.url, tmp_path / "device.yaml")
        denied = tolu(alice_config, "login", "deny", device.code())
        assert denied.returncode == 0 and "Denied" in denied.stdout
        rc, _, err = device.finish()
        assert rc == 1
        assert err.strip() == "Error: the login was denied"
        assert not (tmp_path / "device.yaml").exists()


def test_device_login_expired_is_one_clear_line(tmp_path: Path) -> None:
    with auth_server(tmp_path, {**FAST, "TOLU_DEVICE_CODE_TTL": "2"}) as server:
        device = DeviceLogin(server.url, tmp_path / "device.yaml")
        device.code()
        rc, _, err = device.finish()
        assert rc == 1
        assert err.strip() == "Error: the code expired before it was approved; run the login again"


def test_polling_too_fast_answers_slow_down_and_the_interval_grows(tmp_path: Path) -> None:
    with auth_server(tmp_path, {"TOLU_DEVICE_POLL_INTERVAL": "30"}) as server:
        start = requests.post(server.url + "/auth/device", data={"client_name": "test"}, timeout=30).json()
        assert start["interval"] == 30 and start["verification_uri"] == server.url + "/device"
        first = post_token(server.url, grant_type=DEVICE_GRANT, device_code=start["device_code"])
        assert first.status_code == 400 and first.json()["error"] == "authorization_pending"
        second = post_token(server.url, grant_type=DEVICE_GRANT, device_code=start["device_code"])
        assert second.status_code == 400 and second.json()["error"] == "slow_down"
        assert "35 s" in second.json()["error_description"]  # RFC 8628 3.5: 5 more seconds
        bogus = post_token(server.url, grant_type=DEVICE_GRANT, device_code="tolu_dc_nope")
        assert bogus.json()["error"] == "invalid_grant"


def test_the_client_honours_slow_down(tmp_path: Path) -> None:
    """The device-side loop (tolu login --device) against the real server, with polls sent
    sooner than asked: each slow_down adds 5 s to the client's own interval."""
    with auth_server(tmp_path, FAST) as server:
        grant = device.DeviceGrant.parse(
            requests.post(server.url + "/auth/device", data={}, timeout=30).json()
        )
        waits: list[float] = []

        class Stop(Exception):
            pass

        def hurried(interval: float) -> None:  # records the wait it was asked for, waits not at all
            waits.append(interval)
            if len(waits) == 4:
                raise Stop

        post = device.post_form_to(server.url + "/auth/token")
        with pytest.raises(Stop):
            device.poll(post, grant, sleep=hurried)
        # first poll: pending (no earlier poll); each later one came too soon: slow_down
        assert waits == [1.0, 1.0, 6.0, 11.0]


def test_the_approval_page(tmp_path: Path) -> None:
    with auth_server(tmp_path, FAST) as server:
        url = server.url
        alice = register_login(url)
        start = requests.post(url + "/auth/device", data={"client_name": "laptop"}, timeout=30).json()
        page = requests.get(start["verification_uri_complete"], timeout=30)
        assert page.status_code == 200 and start["user_code"] in page.text
        assert (
            page.headers["X-Frame-Options"] == "DENY"
            and "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
        )
        form = {"user_code": start["user_code"], "username": alice["username"], "decision": "approve"}
        wrong = requests.post(url + "/device", data={**form, "password": "not-the-password"}, timeout=30)
        assert wrong.status_code == 401 and "wrong username or password" in wrong.text
        bad_code = requests.post(
            url + "/device", data={**form, "user_code": "BBBB-BBBB", "password": "x"}, timeout=30
        )
        assert bad_code.status_code == 404 and "no device login with code BBBB-BBBB" in bad_code.text
        ok = requests.post(url + "/device", data={**form, "password": alice["password"]}, timeout=30)
        assert ok.status_code == 200 and f"laptop is now logged in as {alice['username']}" in ok.text
        tokens = post_token(url, grant_type=DEVICE_GRANT, device_code=start["device_code"]).json()
        assert tokens["username"] == alice["username"] and tokens["refresh_token"]
        again = post_token(url, grant_type=DEVICE_GRANT, device_code=start["device_code"])
        assert again.json()["error"] == "invalid_grant", "a device code is used once"
