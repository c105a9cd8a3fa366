"""The tolu server as a docker container, driven through the docker SDK.

``image`` builds the server image from ``ci/server/`` (tagged by a digest of what goes in, so it
is built once per change), ``server`` runs it (``ContainerServer``: the interface of
``runner.server.process.ServerProcess``), ``engine`` connects to the docker engine and names
the labels tolu puts on what it makes, ``leftovers`` removes what a killed process left behind,
``errors`` says what went wrong.
"""
