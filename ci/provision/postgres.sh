#!/usr/bin/env bash
# ci/provision/postgres.sh -- a PostgreSQL cluster for tolu's tests (Debian/Ubuntu, root, no systemd).
#
#   ci/provision/postgres.sh [start]   install if missing, start the cluster, listen on 127.0.0.1:5432,
#                                      create role tolu/tolu with CREATEDB, print the admin URL
#   ci/provision/postgres.sh status    cluster status + whether the admin URL answers
#   ci/provision/postgres.sh stop      stop the cluster (pg_ctlcluster stop)
#
# Idempotent: 'start' on a running, configured cluster only re-checks it (~0.2 s).
# Env knobs: PG_PORT (5432), PG_ROLE (tolu), PG_PASSWORD (tolu).
# The admin URL is what the harness reads from TOLU_TEST_POSTGRES_URL (see docs/ci.md).
set -euo pipefail

PG_PORT=${PG_PORT:-5432}
PG_ROLE=${PG_ROLE:-tolu}
PG_PASSWORD=${PG_PASSWORD:-tolu}
URL="postgresql+psycopg://$PG_ROLE:$PG_PASSWORD@127.0.0.1:$PG_PORT/postgres"

log() { echo "[postgres] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

install_pkgs() {
  if command -v pg_lsclusters >/dev/null && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then return; fi
  [ "$(id -u)" = 0 ] || die "postgresql is not installed and we are not root (apt-get needs root)"
  log "installing postgresql from Debian (takes ~30 s)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends postgresql >/dev/null
}

# newest installed cluster: "VERSION NAME"
pick_cluster() {
  local line
  line=$(pg_lsclusters -h 2>/dev/null | sort -k1,1n | tail -1 || true)
  if [ -z "$line" ]; then
    local ver
    ver=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -1)
    [ -n "$ver" ] || die "no PostgreSQL server version under /usr/lib/postgresql"
    log "creating cluster $ver/main"
    pg_createcluster "$ver" main >/dev/null
    line=$(pg_lsclusters -h | sort -k1,1n | tail -1)
  fi
  # shellcheck disable=SC2086
  set -- $line
  PG_VER=$1; PG_NAME=$2
}

configure() {
  local conf="/etc/postgresql/$PG_VER/$PG_NAME/postgresql.conf" changed=0
  local hba="/etc/postgresql/$PG_VER/$PG_NAME/pg_hba.conf"
  [ -f "$conf" ] || die "missing $conf"
  if ! grep -q '^# tolu-ci$' "$conf"; then
    printf '\n# tolu-ci\nlisten_addresses = '"'"'127.0.0.1'"'"'\nport = %s\nmax_connections = 200\n' \
      "$PG_PORT" >> "$conf"
    changed=1
  fi
  if ! grep -q '^# tolu-ci$' "$hba"; then
    # first match wins in pg_hba.conf: put ours on top
    local tmp; tmp=$(mktemp)
    { echo "# tolu-ci"; echo "host all $PG_ROLE 127.0.0.1/32 scram-sha-256"; cat "$hba"; } > "$tmp"
    install -o postgres -g postgres -m 0640 "$tmp" "$hba"; rm -f "$tmp"
    changed=1
  fi
  CHANGED=$changed
}

running() { pg_lsclusters -h | awk -v v="$PG_VER" -v n="$PG_NAME" '$1==v && $2==n {print $4}' | grep -q online; }

as_pg() { (cd / && runuser -u postgres -- "$@"); }

do_start() {
  [ "$(id -u)" = 0 ] || die "run as root (starts the cluster as user postgres)"
  install_pkgs
  pick_cluster
  configure
  if running && [ "$CHANGED" = 1 ]; then
    log "config changed -> restarting $PG_VER/$PG_NAME"; pg_ctlcluster "$PG_VER" "$PG_NAME" restart
  elif ! running; then
    log "starting cluster $PG_VER/$PG_NAME"
    mkdir -p /var/run/postgresql && chown postgres:postgres /var/run/postgresql
    pg_ctlcluster "$PG_VER" "$PG_NAME" start
  fi
  local ok=0
  for _ in $(seq 1 60); do
    if as_pg psql -p "$PG_PORT" -qAtc 'select 1' >/dev/null 2>&1; then ok=1; break; fi
    sleep 0.25
  done
  [ $ok = 1 ] || { tail -20 "/var/log/postgresql/postgresql-$PG_VER-$PG_NAME.log" >&2 || true; die "cluster did not answer"; }
  if [ "$(as_pg psql -p "$PG_PORT" -qAtc "select 1 from pg_roles where rolname='$PG_ROLE'")" != 1 ]; then
    as_pg psql -p "$PG_PORT" -qc "create role \"$PG_ROLE\" login createdb password '$PG_PASSWORD'"
    log "created role $PG_ROLE"
  else
    as_pg psql -p "$PG_PORT" -qc "alter role \"$PG_ROLE\" login createdb password '$PG_PASSWORD'"
  fi
  # DROP DATABASE ... WITH (FORCE) ends every session on the database; an autovacuum
  # worker there has no role, and only pg_signal_backend lets a non-superuser end it
  as_pg psql -p "$PG_PORT" -qc "grant pg_signal_backend to \"$PG_ROLE\"" >/dev/null
  # prove the URL works over TCP with the password
  PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ROLE" -d postgres -qAtc 'select 1' >/dev/null \
    || die "cannot log in as $PG_ROLE over 127.0.0.1:$PG_PORT"
  log "PostgreSQL $PG_VER/$PG_NAME up on 127.0.0.1:$PG_PORT"
  echo "$URL"
}

do_status() {
  pick_cluster
  pg_lsclusters
  if PGPASSWORD=$PG_PASSWORD psql -h 127.0.0.1 -p "$PG_PORT" -U "$PG_ROLE" -d postgres -qAtc 'select 1' >/dev/null 2>&1; then
    echo "admin URL answers: $URL"
  else
    echo "admin URL does not answer: $URL"; return 1
  fi
}

do_stop() {
  pick_cluster
  if running; then pg_ctlcluster "$PG_VER" "$PG_NAME" stop; log "stopped $PG_VER/$PG_NAME"; fi
}

case ${1:-start} in
  start) do_start ;;
  status) do_status ;;
  stop) do_stop ;;
  url) echo "$URL" ;;
  *) echo "usage: $0 [start|status|stop|url]" >&2; exit 2 ;;
esac
