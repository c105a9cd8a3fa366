"""``Client``: the entry point of the Python API (see docs/client.md)."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from runner.client import device
from runner.client._base import adapter
from runner.client._http import HTTP
from runner.client.account import AccountManager, AdminManager
from runner.client.analytics import Analytics
from runner.client.apps import AppManager
from runner.client.auth import (
    Access,
    Credential,
    LoginCredential,
    StaticCredential,
    TokenCredential,
    access_from,
    parse_expiry,
)
from runner.client.batch_jobs import BatchJobManager
from runner.client.config import (
    Credentials,
    CredentialStore,
    config_path,
    read_config,
    site_credentials_path,
    write_config,
)
from runner.client.dags import DagManager
from runner.client.errors import ConfigError
from runner.client.events import EventManager
from runner.client.jobs import JobManager
from runner.client.runs import RunManager
from runner.client.sessions import SessionManager
from runner.client.sites import SiteManager
from runner.client.transfers import TransferManager
from runner.models import Health, SSOInfo, User

#: the ID token an identity provider issues, exchanged at tolu for a login (RFC 8693).
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ID_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:id_token"


class Client:
    """A connection to one tolu server as one user.

    ``timeout`` is per request (seconds); connection errors and 5xx answers are
    retried ``retries`` times with exponential backoff starting at ``backoff``
    seconds (``runner.client._retry`` says which, and why); 4xx answers raise at
    once (see ``runner.client.errors``).
    ``page_size`` is how many rows ``filter()`` fetches per request as it follows pages.

    >>> client = Client.from_config()                     # after `tolu login`
    >>> client.jobs.filter(state="RUNNING", tags={"run": "a"})
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        username: str | None = None,
        credential: Credential | None = None,
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.25,
        page_size: int = 5_000,
    ) -> None:
        self._http = HTTP(url, token, timeout=timeout, retries=retries, backoff=backoff, page_size=page_size)
        if credential is not None:
            self._http.credential = credential
        self.username = username
        self.sites = SiteManager(self._http)
        self.apps = AppManager(self._http)
        self.jobs = JobManager(self._http)
        self.events = EventManager(self._http)
        self.transfers = TransferManager(self._http)
        self.batch_jobs = BatchJobManager(self._http)
        self.sessions = SessionManager(self._http)
        self.runs = RunManager(self._http)
        self.account = AccountManager(self._http)
        self.admin = AdminManager(self._http)
        self.dags = DagManager(self._http, self.jobs)
        self.analytics = Analytics(self)

    def __repr__(self) -> str:
        return f"Client({self.url!r}, username={self.username!r})"

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def token(self) -> str | None:
        """The current access token (it changes as the credential renews itself)."""
        return self._http.token

    @property
    def credential(self) -> Credential | None:
        """What supplies and renews the access token (runner.client.auth)."""
        return self._http.credential

    def clone(self, **options: float | int) -> Client:
        """Another client of the same server and credential with its own connection pool
        (one per thread): a renewal by one is seen by all."""
        http = self._http
        kwargs = {"timeout": http.timeout, "retries": http.retries, "backoff": http.backoff, **options}
        return Client(self.url, username=self.username, credential=self.credential, **kwargs)  # type: ignore[arg-type]

    # ---- accounts

    @classmethod
    def register(
        cls, url: str, username: str, password: str, *, timeout: float = 30.0, retries: int = 5
    ) -> User:
        """Create an account. Conflict (409) if the name is taken."""
        http = HTTP(url, timeout=timeout, retries=retries)
        try:
            body = {"username": username, "password": password}
            resp = http.request("POST", "/users/register", body=body)
            user: User = adapter(User).validate_json(resp.content)
            return user
        finally:
            http.close()

    @classmethod
    def login(
        cls,
        url: str,
        username: str,
        password: str,
        *,
        timeout: float = 30.0,
        retries: int = 5,
        client_name: str = "",
    ) -> Client:
        """Log in with a password; the client renews its access token on its own."""
        client = cls(url, timeout=timeout, retries=retries, username=username)
        body = {"username": username, "password": password, "client_name": client_name or "tolu client"}
        resp = client._http.request("POST", "/users/login", body=body)
        client._adopt_login(resp.json())
        return client

    @classmethod
    def login_device(
        cls, url: str, show: device.Show, *, client_name: str = "", timeout: float = 30.0, retries: int = 5
    ) -> Client:
        """Device-code login (RFC 8628): ``show(url, code, url_with_code)`` tells the person where
        to approve; returns once someone approved (DeviceLoginError if denied or expired)."""
        client = cls(url, timeout=timeout, retries=retries)
        grant = device.DeviceGrant.parse(
            client._http.post_form("/auth/device", {"client_name": client_name or "tolu login --device"})
        )
        show(grant.verification_uri, grant.user_code, grant.verification_uri_complete)
        answer = device.poll(lambda form: client._http.post_form("/auth/token", form), grant)
        client._adopt_login(answer)
        return client

    @classmethod
    def login_sso(
        cls, url: str, show: device.Show, *, client_name: str = "", timeout: float = 30.0, retries: int = 5
    ) -> Client:
        """Single sign-on: the identity provider's device flow, then its ID token is exchanged
        for a tolu login (the server checks issuer, audience, expiry and signature)."""
        client = cls(url, timeout=timeout, retries=retries)
        info: SSOInfo = adapter(SSOInfo).validate_json(client._http.request("GET", "/auth/sso").content)
        meta = device.provider_metadata(info.issuer, timeout=timeout)
        start = device.post_form_to(str(meta["device_authorization_endpoint"]), timeout=timeout)
        grant = device.DeviceGrant.parse(start({"client_id": info.client_id, "scope": info.scopes}))
        show(grant.verification_uri, grant.user_code, grant.verification_uri_complete)
        tokens = device.poll(
            device.post_form_to(str(meta["token_endpoint"]), timeout=timeout), grant, client_id=info.client_id
        )
        if "id_token" not in tokens:
            raise ConfigError(
                f"the identity provider {info.issuer} answered no ID token (is 'openid' a scope?)"
            )
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": str(tokens["id_token"]),
            "subject_token_type": ID_TOKEN_TYPE,
            "client_name": client_name or "tolu login --sso",
        }
        client._adopt_login(client._http.post_form("/auth/token", form))
        return client

    def _adopt_login(self, answer: dict[str, object]) -> None:
        self._http.credential = LoginCredential(access_from(answer), answer.get("refresh_token"))  # type: ignore[arg-type]
        self.username = str(answer.get("username") or self.username or "")

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] | None = None, *, timeout: float = 30.0, retries: int = 5
    ) -> Client:
        """The client saved by ``tolu login`` (``$TOLU_CONFIG`` or ~/.config/tolu/credentials.yaml);
        its renewals are written back to that file."""
        file = config_path(path)
        return cls._from_credentials(read_config(file), file, timeout=timeout, retries=retries)

    @classmethod
    def for_site(
        cls, site_dir: str | os.PathLike[str], *, url: str = "", timeout: float = 30.0, retries: int = 5
    ) -> Client:
        """The client of a site's agent and launchers: the site's token (SITE_DIR/credentials.yaml,
        written by `tolu site init`), else the user's login; ``url`` overrides the server URL."""
        file = site_credentials_path(site_dir)
        if not file.exists():
            file = config_path()
        client = cls._from_credentials(read_config(file), file, timeout=timeout, retries=retries)
        if url and url.rstrip("/") != client.url:
            client = Client(
                url, username=client.username, credential=client.credential, timeout=timeout, retries=retries
            )
        return client

    @classmethod
    def _from_credentials(cls, creds: Credentials, file: Path, *, timeout: float, retries: int) -> Client:
        credential: Credential
        if creds.api_token:
            credential = TokenCredential(creds.api_token)
        elif creds.refresh_token:
            access = Access(creds.token, parse_expiry(creds.expires_at), creds.expires_in)
            credential = LoginCredential(access, creds.refresh_token, store=CredentialStore(file, creds))
        else:
            credential = StaticCredential(creds.token)
        return cls(
            creds.url, username=creds.username, credential=credential, timeout=timeout, retries=retries
        )

    def save_config(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Store url, username and the credential for ``from_config`` (file mode 0600); a
        login's later renewals are written there too."""
        credential = self.credential
        if credential is None or (credential.current is None and not isinstance(credential, TokenCredential)):
            raise ConfigError("not logged in: nothing to save")
        username = self.username or self.me().username
        file = config_path(path)
        if isinstance(credential, TokenCredential):
            return write_config(
                Credentials(url=self.url, username=username, api_token=credential.secret), file
            )
        creds = Credentials(url=self.url, username=username, token=self.token or "")
        if isinstance(credential, LoginCredential):
            credential.store = CredentialStore(file, creds)
            credential.store.save_login(credential)
            return file
        return write_config(creds, file)

    def logout(self) -> None:
        """End this login at the server (its refresh token and access tokens stop working)."""
        credential = self.credential
        if isinstance(credential, LoginCredential) and credential.refresh_token:
            self._http.post_form("/auth/revoke", {"token": credential.refresh_token})

    # ---- server

    def health(self) -> Health:
        """Server version, schema revision and database kind (no login needed)."""
        resp = self._http.request("GET", "/health")
        health: Health = adapter(Health).validate_json(resp.content)
        return health

    def me(self) -> User:
        resp = self._http.request("GET", "/users/me")
        user: User = adapter(User).validate_json(resp.content)
        return user

    # ---- lifetime

    def close(self) -> None:
        """Close the pooled connections."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
