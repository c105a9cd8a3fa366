"""tolu's job runner: server, client, site agent, launcher and platform interfaces."""

__version__ = "0.1.0"
