"""Deployment tooling: what a facility uses to check, publish and start a tolu server.

``smoke`` runs the API smoke tests (stepci workflows of ``ci/smoke/``) against any URL,
``registry`` pushes the server image to a registry and pulls it back by digest,
``template`` renders a deployment directory for a facility.
"""
