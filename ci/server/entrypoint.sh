#!/bin/sh
# Container entrypoint: run the tolu server on $TOLU_HOST (0.0.0.0):$TOLU_PORT with its data in $TOLU_DATA_DIR.
# TOLU_DATABASE_URL (PostgreSQL, with its password) is read by the server from the environment
# (kept out of argv so it does not show in `ps`); the signing keys live in the data directory. TOLU_MIGRATE=1 applies migrations first.
# Extra arguments are passed to the server. -P: a runner/ package in the working directory (the
# data volume) cannot shadow tolu's (runner/interpreter.py).
set -eu
if [ "${TOLU_MIGRATE:-0}" = 1 ]; then set -- --migrate "$@"; fi
exec /opt/tolu/bin/python -P -m runner.server --host "${TOLU_HOST:-0.0.0.0}" --port "${TOLU_PORT:-8000}" \
  --data-dir "${TOLU_DATA_DIR:-/data}" "$@"
