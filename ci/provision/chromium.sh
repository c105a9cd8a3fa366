#!/usr/bin/env bash
# ci/provision/chromium.sh -- Debian's Chromium for the web interface suite (suites/ui).
#
#   ci/provision/chromium.sh [start]   install chromium from Debian when missing (root), print its path
#   ci/provision/chromium.sh status    the path and `chromium --version`
#   ci/provision/chromium.sh stop      nothing to stop (a browser runs only inside a test)
#
# Playwright (PyPI) drives it with executable_path: no browser is downloaded. The version is
# pinned (CHROMIUM_VERSION); when Debian's security updates have replaced it, the current
# one is installed instead and the script says so.
set -euo pipefail

CHROMIUM=${TOLU_CHROMIUM:-/usr/bin/chromium}
CHROMIUM_VERSION=${CHROMIUM_VERSION:-156.0.8078.108-1~deb12u1}

log() { echo "[chromium] $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

installed() { [ -x "$CHROMIUM" ] && "$CHROMIUM" --version 2>/dev/null | grep -q Chromium; }

do_start() {
  if ! installed; then
    [ "$(id -u)" = 0 ] || die "no Chromium at $CHROMIUM and we are not root (apt-get needs root)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    if apt-cache madison chromium 2>/dev/null | grep -qF "| $CHROMIUM_VERSION |"; then
      log "installing chromium=$CHROMIUM_VERSION from Debian"
      apt-get install -y -q --no-install-recommends "chromium=$CHROMIUM_VERSION" fonts-liberation >/dev/null
    else
      log "chromium $CHROMIUM_VERSION is no longer in the archive; installing the current one"
      apt-get install -y -q --no-install-recommends chromium fonts-liberation >/dev/null
    fi
  fi
  installed || die "$CHROMIUM does not run"
  echo "$CHROMIUM"
}

do_status() {
  installed || { echo "no Chromium at $CHROMIUM"; return 1; }
  echo "$CHROMIUM: $("$CHROMIUM" --version 2>/dev/null)"
}

case ${1:-start} in
  start) do_start ;;
  status) do_status ;;
  stop) ;;
  *) echo "usage: $0 [start|status|stop]" >&2; exit 2 ;;
esac
