"""Identity: who may call the server, with which credential, reaching what.

- ``passwords``: argon2 hashes and the password policy
- ``keys``: the server's Ed25519 signing keys, rotation, the public JWKS
- ``tokens``: tolu's short-lived access tokens (JWT, EdDSA)
- ``opaque``: random secrets stored as hashes (API tokens, refresh tokens, device codes)
- ``principal``: the caller as the services see it, and its scope
- ``oidc``: an OpenID Connect provider's tokens (single sign-on)
- ``verify``: ``authenticate(request)``, the one token check
- ``settings``: lifetimes, limits, the provider (``TOLU_*``)

The stateful parts (grants, refresh, device codes, audit, rate limits) are services
under ``runner.server.services``; docs/auth.md explains the flows.
"""
