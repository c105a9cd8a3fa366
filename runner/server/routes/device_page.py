"""``/device``: the small page where a person approves a device-code login in a browser.

The page asks for the code shown on the device and the account's name and
password (the same checks and failed-login limits as ``POST /users/login``), then
approves or denies. It sets no cookie and needs no session, so there is nothing for
another site to ride on (no CSRF); it may not be framed (no clickjacking).
Accounts without a password (SSO) approve with ``tolu login approve CODE``.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Query
from starlette.responses import HTMLResponse

from runner.server.auth.principal import Principal
from runner.server.errors import ServiceError, TooManyRequests
from runner.server.routes.auth import Form
from runner.server.routes.deps import Address, Auth, Db
from runner.server.services import device, users

router = APIRouter(tags=["auth"], include_in_schema=False)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tolu: approve a device</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 26rem; margin: 3rem auto; padding: 0 1rem; }}
label {{ display: block; margin: .8rem 0 .2rem; }}
input {{ width: 100%; padding: .5rem; font-size: 1rem; box-sizing: border-box; }}
input[name=user_code] {{ text-transform: uppercase; letter-spacing: .2em; font-family: monospace; }}
button {{ margin: 1.2rem .5rem 0 0; padding: .5rem 1.2rem; font-size: 1rem; }}
.error {{ color: #b00020; }} .ok {{ color: #1b5e20; }}
</style></head>
<body><h1>Approve a device</h1>{body}</body></html>
"""

FORM = """<p>A device asks to log in to tolu as you. Enter the code it shows, then your
account's name and password.</p>{message}
<form method="post" action="/device">
<label for="user_code">Code</label>
<input id="user_code" name="user_code" value="{user_code}" autocomplete="off" required>
<label for="username">Username</label>
<input id="username" name="username" value="{username}" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" name="decision" value="approve">Approve</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>"""

HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def _page(body: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(PAGE.format(body=body), status_code=status, headers={**HEADERS, **(headers or {})})


def _form(user_code: str = "", username: str = "", message: str = "") -> str:
    note = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return FORM.format(user_code=escape(user_code), username=escape(username), message=note)


@router.get("/device", response_class=HTMLResponse)
def show(user_code: str = Query("", max_length=32)) -> HTMLResponse:
    return _page(_form(user_code))


@router.post("/device", response_class=HTMLResponse)
def submit(form: Form, db: Db, auth: Auth, address: Address) -> HTMLResponse:
    code = form.get("user_code", "").strip()
    name = form.get("username", "").strip()
    approve = form.get("decision", "approve") != "deny"
    try:
        if not code or not name:
            return _page(_form(code, name, "Enter the code, your username and your password."), 400)
        with db.read() as conn:
            device.pending(conn, code)  # a wrong code is said before the password is checked
        user_id = users.verify_password_login(db, auth.settings, name, form.get("password", ""), address)
        with db.write() as conn:
            username = users.me(conn, user_id)["username"]
            done = device.decide(conn, Principal(user_id, username), code, approve=approve, address=address)
    except ServiceError as exc:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, TooManyRequests) else None
        return _page(_form(code, name, exc.detail), exc.status, headers)
    if done["state"] == "approved":
        text = (
            f"Approved: {escape(done['client_name'])} is now logged in as {escape(username)}. Return to it."
        )
    else:
        text = f"Denied: {escape(done['client_name'])} will not be logged in."
    return _page(f'<p class="ok" role="status">{text}</p>')
