#!/usr/bin/env bash
# ci/provision/registry.sh -- a container registry on 127.0.0.1 for tolu's publish test (Debian, root).
#
#   ci/provision/registry.sh [start]  install Debian's docker-registry if missing, start it on
#                                     127.0.0.1:$REGISTRY_PORT with its own config and storage,
#                                     pid file, wait for /v2/ (no-op when one already answers)
#   ci/provision/registry.sh url      print the registry's address (127.0.0.1:5000)
#   ci/provision/registry.sh status   answers or not
#   ci/provision/registry.sh stop     stop the registry THIS script started (by its pid file)
#
# The docker engine treats registries on 127.0.0.0/8 as insecure (plain HTTP) without any
# daemon setting, so `docker push 127.0.0.1:5000/...` works as it is. Not the package's
# systemd/init service: our own config (no auth, deletes allowed) and storage in $REGISTRY_STATE.
# Env knobs: REGISTRY_STATE (/var/lib/tolu-ci/registry): pid file, log, config, storage;
#            REGISTRY_PORT (5000).
set -euo pipefail

STATE=${REGISTRY_STATE:-/var/lib/tolu-ci/registry}
PORT=${REGISTRY_PORT:-5000}
ADDR=127.0.0.1:$PORT

log() { echo "[registry] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }
api_up() { curl -sf -o /dev/null "http://$ADDR/v2/"; }

do_start() {
  if api_up; then log "registry already answers at $ADDR"; return 0; fi
  if ! command -v docker-registry >/dev/null; then
    [ "$(id -u)" = 0 ] || die "docker-registry is not installed and we are not root"
    log "installing docker-registry from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends docker-registry >/dev/null
  fi
  mkdir -p "$STATE/storage"
  cat > "$STATE/config.yml" <<CONFIG
version: 0.1
log:
  level: info
  fields: {service: registry}
storage:
  filesystem: {rootdirectory: $STATE/storage}
  delete: {enabled: true}
http:
  addr: $ADDR
CONFIG
  if [ -s "$STATE/registry.pid" ] && kill -0 "$(cat "$STATE/registry.pid")" 2>/dev/null; then
    log "registry (pid $(cat "$STATE/registry.pid")) running but not answering yet"
  else
    setsid docker-registry serve "$STATE/config.yml" >"$STATE/registry.log" 2>&1 </dev/null &
    echo $! > "$STATE/registry.pid"
  fi
  for _ in $(seq 1 60); do
    if api_up; then log "registry up at $ADDR (pid $(cat "$STATE/registry.pid"))"; return 0; fi
    kill -0 "$(cat "$STATE/registry.pid")" 2>/dev/null || break
    sleep 0.5
  done
  tail -20 "$STATE/registry.log" >&2 || true
  die "the registry did not come up; see $STATE/registry.log"
}

do_status() {
  if api_up; then echo "registry: up at $ADDR"; else echo "registry: down ($ADDR)"; fi
  if [ -s "$STATE/registry.pid" ] && kill -0 "$(cat "$STATE/registry.pid")" 2>/dev/null; then
    echo "started by this script: pid $(cat "$STATE/registry.pid")"
  fi
  api_up
}

do_stop() {
  local f="$STATE/registry.pid" pid
  if [ ! -s "$f" ] || ! kill -0 "$(cat "$f")" 2>/dev/null; then log "no registry started by this script"; return 0; fi
  pid=$(cat "$f"); log "stopping the registry (pid $pid)"
  kill -TERM "$pid"
  for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || { rm -f "$f"; return 0; }; sleep 0.25; done
  log "the registry did not exit; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; rm -f "$f"
}

case ${1:-start} in
  start) do_start ;;
  url) echo "$ADDR" ;;
  status) do_status ;;
  stop) do_stop ;;
  *) echo "usage: $0 [start|url|status|stop]" >&2; exit 2 ;;
esac
