#!/usr/bin/env bash
# ci/provision/docker.sh -- a Docker engine for tolu's container tests (Debian, root, no systemd,
# possibly no reachable registry).
#
#   ci/provision/docker.sh [start]    install docker.io and debootstrap if missing, start dockerd (vfs)
#                                     with a pid file,
#                                     wait for the API (no-op when an engine already answers)
#   ci/provision/docker.sh base-image print a base image tag usable for ci/server.Dockerfile:
#                                     python:3.11-slim if it is present or can be pulled, else
#                                     local/debian-python:bookworm (built with debootstrap + docker import
#                                     when missing; ~45 s, ~300 MB)
#   ci/provision/docker.sh postgres-image  print a PostgreSQL image for the deployment template:
#                                     postgres:16-bookworm if present or pullable, else local/postgres:15-<digest>
#                                     (Debian's postgresql-15, built from ci/provision/postgres-image)
#   ci/provision/docker.sh status     engine status
#   ci/provision/docker.sh stop       stop the dockerd THIS script started (by its pid file)
#
# Notes: vfs copies every layer in full, so keep images few and small (`docker image prune -f`).
# pip inside `docker build` may not verify a package proxy's TLS: images install from a host-built
# wheelhouse with --no-index (see ci/server.Dockerfile).
# Env knobs: DOCKER_STATE (/var/lib/tolu-ci/docker): pid file + dockerd.log;
#            BASE_TAG (local/debian-python:bookworm); UPSTREAM_BASE (python:3.11-slim);
#            DEBIAN_MIRROR (http://deb.debian.org/debian).
set -euo pipefail

STATE=${DOCKER_STATE:-/var/lib/tolu-ci/docker}
BASE_TAG=${BASE_TAG:-local/debian-python:bookworm}
UPSTREAM_BASE=${UPSTREAM_BASE:-python:3.11-slim}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

log() { echo "[docker] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
api_up() { docker info >/dev/null 2>&1; }

install_packages() {
  # the engine, and debootstrap for the base image: installed here, in one go, so that
  # base-image can run beside other apt-get installs (ci/test builds the images in the
  # background) without taking dpkg's lock itself
  local want=()
  command -v dockerd >/dev/null || want+=(docker.io iptables)
  command -v debootstrap >/dev/null || want+=(debootstrap)
  [ ${#want[@]} -gt 0 ] && [ "$(id -u)" = 0 ] || return 0
  log "installing ${want[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${want[@]}" >/dev/null
}

do_start() {
  install_packages
  if command -v docker >/dev/null && api_up; then log "engine already up"; return 0; fi
  [ "$(id -u)" = 0 ] || die "no docker engine answers and we are not root (cannot start dockerd)"
  command -v dockerd >/dev/null || die "dockerd is not installed"
  mkdir -p "$STATE"
  if [ -s "$STATE/dockerd.pid" ] && kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
    log "dockerd (pid $(cat "$STATE/dockerd.pid")) running but API not answering yet"
  else
    # a stale pid file from a dead dockerd blocks the next start
    rm -f "$STATE/dockerd.pid" /var/run/docker.pid
    setsid dockerd --storage-driver=vfs --pidfile "$STATE/dockerd.pid" >"$STATE/dockerd.log" 2>&1 </dev/null &
  fi
  for _ in $(seq 1 120); do
    if api_up; then log "engine up (dockerd pid $(cat "$STATE/dockerd.pid" 2>/dev/null || echo '?'))"; return 0; fi
    sleep 0.5
  done
  tail -20 "$STATE/dockerd.log" >&2 || true
  die "dockerd did not come up; see $STATE/dockerd.log"
}

do_base_image() {
  do_start
  if docker image inspect "$UPSTREAM_BASE" >/dev/null 2>&1; then echo "$UPSTREAM_BASE"; return 0; fi
  if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then echo "$BASE_TAG"; return 0; fi
  if [ "${TOLU_CI_TRY_PULL:-1}" = 1 ] && timeout 30 docker pull -q "$UPSTREAM_BASE" >/dev/null 2>&1; then
    echo "$UPSTREAM_BASE"; return 0
  fi
  log "no registry answers; building $BASE_TAG from Debian packages (debootstrap, ~45 s)"
  [ "$(id -u)" = 0 ] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap is not installed (ci/provision/docker.sh start installs it)"
  mkdir -p "$STATE"
  local root
  root=$(mktemp -d /var/tmp/tolu-base.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$root'" EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,curl bookworm "$root" \
    "$DEBIAN_MIRROR" >"$STATE/debootstrap.log" 2>&1 || { tail -20 "$STATE/debootstrap.log" >&2; die "debootstrap failed"; }
  # slim it: apt lists, caches, docs
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
    "$root"/usr/share/locale/*
  chmod 0755 "$root"   # mktemp -d makes it 0700: the image root would be closed to non-root users
  tar -C "$root" -c . | docker import -c 'CMD ["/bin/bash"]' - "$BASE_TAG" >/dev/null
  log "built $BASE_TAG"
  echo "$BASE_TAG"
}

do_postgres_image() {
  # a PostgreSQL image for the deployment template's compose file: the official one when present
  # or pullable, else local/postgres:15 built from Debian's packages (ci/provision/postgres-image)
  do_start
  local official=${POSTGRES_IMAGE:-postgres:16-bookworm} dir local_tag base lock
  dir="$(dirname "$0")/postgres-image"
  # one build at a time: ci/test builds it in the background while the template's test may ask
  # for it; whoever comes second waits here and then finds the image built
  lock="${TMPDIR:-/tmp}/tolu-postgres-image.lock"
  exec 9>"$lock"
  flock 9
  # tagged by what it is built from: a changed Dockerfile or entrypoint builds a new one
  local_tag=local/postgres:15-$(cat "$dir"/Dockerfile "$dir"/entrypoint.sh | sha256sum | cut -c1-12)
  if docker image inspect "$official" >/dev/null 2>&1; then echo "$official"; return 0; fi
  if docker image inspect "$local_tag" >/dev/null 2>&1; then echo "$local_tag"; return 0; fi
  if [ "${TOLU_CI_TRY_PULL:-1}" = 1 ] && timeout 60 docker pull -q "$official" >/dev/null 2>&1; then
    echo "$official"; return 0
  fi
  base=$(do_base_image)
  log "building $local_tag from Debian's postgresql-15 on $base"
  docker build -q --build-arg "BASE_IMAGE=$base" -t "$local_tag" "$dir" >&2 \
    || die "building $local_tag failed"
  echo "$local_tag"
}

do_status() {
  if api_up; then
    echo "docker engine: up ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  else
    echo "docker engine: down"
  fi
  if [ -s "$STATE/dockerd.pid" ] && kill -0 "$(cat "$STATE/dockerd.pid")" 2>/dev/null; then
    echo "dockerd started by this script: pid $(cat "$STATE/dockerd.pid")"
  fi
  api_up
}

do_stop() {
  local f="$STATE/dockerd.pid" pid
  if [ ! -s "$f" ] || ! kill -0 "$(cat "$f")" 2>/dev/null; then log "no dockerd started by this script"; return 0; fi
  pid=$(cat "$f"); log "stopping dockerd (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 0; }; sleep 0.5; done
  log "dockerd did not exit; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$f"
}

case ${1:-start} in
  start) do_start ;;
  base-image) do_base_image ;;
  postgres-image) do_postgres_image ;;
  status) do_status ;;
  stop) do_stop ;;
  *) echo "usage: $0 [start|base-image|postgres-image|status|stop]" >&2; exit 2 ;;
esac
