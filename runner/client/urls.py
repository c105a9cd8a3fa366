"""The server URL a person typed, checked before the first request, and the hint that goes
with a failed connection to it (one line each: see docs/cli.md, "Errors").

requests' own words for these cases ("No connection adapters were found for
'127.0.0.1:8000'", an SSLError chain) name the library, not the fix.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from runner.client.errors import ConfigError

SCHEMES = ("http", "https")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "0.0.0.0")


def check_url(url: str) -> str:
    """``url`` without a trailing slash; ConfigError (one line, with the fix) if it is not an
    http(s) URL with a host."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES or not parts.netloc:
        if "://" not in text:
            # "127.0.0.1:8000" parses with no scheme, "localhost:8000" with scheme "localhost"
            raise ConfigError(f"server URL {url!r} has no scheme: use http://{text.rstrip('/')}")
        raise ConfigError(
            f"server URL {url!r}: use http:// or https:// and a host, e.g. http://127.0.0.1:8000"
        )
    return text.rstrip("/")


def connection_hint(url: str, reason: str) -> str:
    """What to try when ``url`` could not be reached for ``reason`` (requests' error text)."""
    parts = urlsplit(url)
    if "WRONG_VERSION_NUMBER" in reason or "wrong version number" in reason:
        plain = url.replace("https://", "http://", 1)
        return f"TLS handshake failed: the server speaks plain HTTP? try {plain}"
    if "CERTIFICATE_VERIFY_FAILED" in reason:
        return (
            "its TLS certificate is not trusted here (set REQUESTS_CA_BUNDLE to the CA file that signed it)"
        )
    if "Connection refused" in reason or "connection refused" in reason:
        if parts.hostname in _LOCAL_HOSTS:
            return "connection refused: is it running? start one with `tolu server up --detach`"
        return "connection refused: is the server running, and is the port right?"
    return ""
