"""``Client``: the entry point of the Python API (see docs/client.md)."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from runner.client._base import adapter
from runner.client._http import HTTP
from runner.client.apps import AppManager
from runner.client.batch_jobs import BatchJobManager
from runner.client.config import Credentials, read_config, write_config
from runner.client.errors import ConfigError
from runner.client.events import EventManager
from runner.client.jobs import JobManager
from runner.client.sessions import SessionManager
from runner.client.sites import SiteManager
from runner.client.transfers import TransferManager
from runner.models import Health, Token, User


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
        timeout: float = 30.0,
        retries: int = 5,
        backoff: float = 0.25,
        page_size: int = 5_000,
    ) -> None:
        self._http = HTTP(url, token, timeout=timeout, retries=retries, backoff=backoff, page_size=page_size)
        self.username = username
        self.sites = SiteManager(self._http)
        self.apps = AppManager(self._http)
        self.jobs = JobManager(self._http)
        self.events = EventManager(self._http)
        self.transfers = TransferManager(self._http)
        self.batch_jobs = BatchJobManager(self._http)
        self.sessions = SessionManager(self._http)

    def __repr__(self) -> str:
        return f"Client({self.url!r}, username={self.username!r})"

    @property
    def url(self) -> str:
        return self._http.url

    @property
    def token(self) -> str | None:
        return self._http.token

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
        cls, url: str, username: str, password: str, *, timeout: float = 30.0, retries: int = 5
    ) -> Client:
        """Log in with a password; the returned client carries the bearer token."""
        client = cls(url, timeout=timeout, retries=retries, username=username)
        resp = client._http.request("POST", "/users/login", body={"username": username, "password": password})
        token: Token = adapter(Token).validate_json(resp.content)
        client._http.token = token.access_token
        client.username = token.username
        return client

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str] | None = None, *, timeout: float = 30.0, retries: int = 5
    ) -> Client:
        """The client saved by ``tolu login`` (``$TOLU_CONFIG`` or ~/.config/tolu/credentials.yaml)."""
        creds = read_config(path)
        return cls(creds.url, creds.token, username=creds.username, timeout=timeout, retries=retries)

    def save_config(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Store url, username and token for ``from_config`` (file mode 0600)."""
        if not self.token:
            raise ConfigError("not logged in: nothing to save")
        username = self.username or self.me().username
        return write_config(Credentials(url=self.url, username=username, token=self.token), path)

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
