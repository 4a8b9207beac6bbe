#!/usr/bin/env bash
# Installs what the agent's local sandbox needs: bubblewrap (`bwrap`), plus bash and the
# coreutils it runs inside (present on any Debian/Ubuntu). Idempotent: does nothing when
# everything is there. Uses apt-get as root or through sudo; exits non-zero with a message
# saying what to do when it cannot install.
set -euo pipefail

say() { echo "install-sandbox-deps: $*"; }
fail() {
  echo "install-sandbox-deps: $*" >&2
  exit 1
}

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
[ -x /bin/bash ] || missing+=(bash)
[ -x /bin/sh ] || missing+=(dash)

if [ ${#missing[@]} -eq 0 ]; then
  say "bubblewrap present ($(bwrap --version 2>/dev/null || echo bwrap)), nothing to install"
else
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "missing: ${missing[*]}; no apt-get here: install them with your package manager (the package is usually called bubblewrap)"
  fi
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
  else
    fail "missing: ${missing[*]}; run this script as root (or with passwordless sudo), or: sudo apt-get install -y ${missing[*]}"
  fi
  say "installing ${missing[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
    say "apt-get install failed; updating the package lists and retrying"
    "${sudo[@]}" apt-get update -qq || fail "apt-get update failed"
    "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" ||
      fail "could not install ${missing[*]} with apt-get"
  fi
  command -v bwrap >/dev/null 2>&1 || fail "bubblewrap was installed but bwrap is not on PATH"
  say "installed: ${missing[*]} ($(bwrap --version 2>/dev/null || echo bwrap))"
fi

# Smoke test: can bubblewrap create the namespaces the sandbox uses? (A warning only: the
# server's readiness check reports the same problem with the same advice.)
probe=(bwrap --unshare-user --uid 1000 --gid 1000 --unshare-pid --unshare-ipc --unshare-uts
  --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64
  --proc /proc --dev /dev -- /bin/sh -c 'test "$(id -u)" = 1000')
as_user=()
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
  # As root the server starts bubblewrap as an unprivileged user (run_as_uid, 60000).
  as_user=(setpriv --reuid "${SANDBOX_RUN_AS_UID:-60000}" --regid "${SANDBOX_RUN_AS_GID:-60000}" --clear-groups)
fi
if err=$(cd / && timeout 20 "${as_user[@]}" "${probe[@]}" 2>&1); then
  say "bubblewrap can start sandboxes"
else
  echo "install-sandbox-deps: WARNING: bubblewrap is installed but could not start a test sandbox: ${err:-no reason given}" >&2
  echo "install-sandbox-deps: user namespaces must be allowed (sysctl user.max_user_namespaces > 0;" \
    "kernel.unprivileged_userns_clone=1 on older Debian; kernel.apparmor_restrict_unprivileged_userns=0" \
    "or an AppArmor profile for bwrap on Ubuntu 24.04+; in a container: seccomp/AppArmor must allow unshare)" >&2
fi
