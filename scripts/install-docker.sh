#!/usr/bin/env bash
# Makes a Docker Engine answer on this machine, for the deploy images and the compose smoke
# test: installs Debian's `docker.io` (20.10), `docker-compose` (1.29) and `mmdebstrap` (the
# local base image: no registry is reachable here) when missing, starts `dockerd` in the
# background when no daemon answers (no systemd needed; log in $DOCKERD_LOG) and waits until
# `docker info` works. Idempotent and quiet when everything is already there.
#
# Exit codes: 0 the engine answers; 1 something could not be installed (the message says
# what to run); 2 the engine cannot start here (no root, no cgroups, …): callers that may
# skip (scripts/compose-smoke.sh) skip on 2 only.
set -euo pipefail

DOCKERD_LOG=${DOCKERD_LOG:-/var/log/ironhand-dockerd.log}
WAIT_SECS=${DOCKER_WAIT_SECS:-60}

say() { echo "install-docker: $*"; }
fail() {
  echo "install-docker: $*" >&2
  exit 1
}
cannot_start() {
  echo "install-docker: $*" >&2
  exit 2
}

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  sudo=(false)
fi

# An engine that already answers (systemd's, Docker Desktop's, a remote DOCKER_HOST) is used
# as it is; only the build tools may be missing then.
engine_answers() { docker info >/dev/null 2>&1; }

missing=()
# docker.io brings dockerd, containerd and runc. A docker CLI alone (e.g. a static one in
# /usr/local/bin) is not an engine.
command -v dockerd >/dev/null 2>&1 || [ -x /usr/sbin/dockerd ] || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
# docker's bridge network needs iptables; mmdebstrap's minbase needs nothing else.
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || missing+=(iptables)

if [ ${#missing[@]} -gt 0 ]; then
  if engine_answers && [ ${#missing[@]} -eq 1 ] && [ "${missing[0]}" = docker.io ]; then
    missing=() # a remote or foreign engine answers; dockerd itself is not needed
  fi
fi
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null 2>&1 ||
    fail "missing: ${missing[*]}; no apt-get here: install Docker Engine, docker-compose and mmdebstrap yourself"
  [ "${sudo[*]}" != false ] ||
    fail "missing: ${missing[*]}; run this script as root (or with passwordless sudo), or: sudo apt-get install -y ${missing[*]}"
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq || fail "apt-get update failed"
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null ||
      fail "could not install ${missing[*]} with apt-get"
  fi
fi

if engine_answers; then
  exit 0
fi

# No daemon answers: start Debian's dockerd ourselves (it starts its own containerd).
[ -n "${DOCKER_HOST:-}" ] && cannot_start "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local engine in its place"
[ "${sudo[*]}" != false ] || cannot_start "no Docker Engine answers and starting dockerd needs root"
dockerd_bin=$(command -v dockerd || echo /usr/sbin/dockerd)
[ -x "$dockerd_bin" ] || fail "dockerd not found after installing docker.io"
[ -d /sys/fs/cgroup ] || cannot_start "no /sys/fs/cgroup: this kernel or container cannot run a Docker Engine"

if ! pgrep -x dockerd >/dev/null 2>&1; then
  # A stale pid file from a killed daemon makes dockerd refuse to start.
  if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then
    "${sudo[@]}" rm -f /var/run/docker.pid
  fi
  started=1
  "${sudo[@]}" mkdir -p "$(dirname "$DOCKERD_LOG")"
  # setsid + nohup: the daemon outlives this script and the shell that ran it.
  "${sudo[@]}" sh -c "setsid nohup '$dockerd_bin' >>'$DOCKERD_LOG' 2>&1 </dev/null &"
fi

for _ in $(seq $((WAIT_SECS * 2))); do
  if engine_answers; then
    [ -z "${started:-}" ] ||
      say "started dockerd $(docker version --format '{{.Server.Version}}' 2>/dev/null) (log: $DOCKERD_LOG)"
    exit 0
  fi
  if ! pgrep -x dockerd >/dev/null 2>&1; then
    break
  fi
  sleep 0.5
done
echo "install-docker: dockerd did not come up; the end of $DOCKERD_LOG:" >&2
tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
cannot_start "no Docker Engine could be started here"
