#!/usr/bin/env bash
# Installs what the agent's local sandbox needs: bubblewrap (`bwrap`), slirp4netns (the
# sandbox network when network = true: outbound access without the host's loopback), plus
# bash, coreutils and util-linux's unshare/nsenter (present on any Debian/Ubuntu), and makes
# /dev/net/tun usable by unprivileged users (mode 0666, as udev sets it on a normal system).
# Idempotent: does nothing when everything is there. Uses apt-get as root or through sudo;
# exits non-zero with a message saying what to do when it cannot install.
set -euo pipefail

say() { echo "install-sandbox-deps: $*"; }
fail() {
  echo "install-sandbox-deps: $*" >&2
  exit 1
}

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v slirp4netns >/dev/null 2>&1 || missing+=(slirp4netns)
{ command -v unshare && command -v nsenter; } >/dev/null 2>&1 || missing+=(util-linux)
[ -x /bin/bash ] || missing+=(bash)
[ -x /bin/sh ] || missing+=(dash)
# As root the server contains sandboxes further: iptables for the egress filter (private
# ranges, the metadata address, the host's own addresses), mkfs.ext4 for size-limited
# workspaces, setpriv (util-linux) to enter a sandbox's cgroup.
if [ "$(id -u)" -eq 0 ]; then
  command -v iptables >/dev/null 2>&1 || missing+=(iptables)
  command -v mkfs.ext4 >/dev/null 2>&1 || missing+=(e2fsprogs)
  command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  sudo=(false)
fi

if [ ${#missing[@]} -eq 0 ]; then
  say "bubblewrap ($(bwrap --version 2>/dev/null || echo bwrap)) and slirp4netns" \
    "($(slirp4netns --version 2>/dev/null | head -n1 || echo slirp4netns)) present, nothing to install"
else
  if ! command -v apt-get >/dev/null 2>&1; then
    fail "missing: ${missing[*]}; no apt-get here: install them with your package manager (the package is usually called bubblewrap)"
  fi
  if [ "${sudo[*]}" = false ]; then
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
  command -v slirp4netns >/dev/null 2>&1 || fail "slirp4netns was installed but is not on PATH"
  say "installed: ${missing[*]} ($(bwrap --version 2>/dev/null || echo bwrap))"
fi

# The sandbox's browser (optional: without it the server offers no browser tools and
# /api/v1/ready says why): Chromium, TigerVNC's Xvnc (display and VNC server in one), and
# fonts for pages in Chinese, Japanese, Korean and Arabic.
browser_missing=()
{ [ -x /usr/lib/chromium/chromium ] || [ -x /usr/bin/chromium ]; } || browser_missing+=(chromium)
{ [ -x /usr/bin/Xtigervnc ] || [ -x /usr/bin/Xvnc ]; } || browser_missing+=(tigervnc-standalone-server)
for pkg in fonts-noto-core fonts-noto-cjk; do
  dpkg -s "$pkg" >/dev/null 2>&1 || browser_missing+=("$pkg")
done
if [ ${#browser_missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "${sudo[*]}" != false ]; then
    say "installing the sandbox browser: ${browser_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${browser_missing[@]}" >/dev/null 2>&1; then
      "${sudo[@]}" apt-get update -qq || true
      "${sudo[@]}" apt-get install -y --no-install-recommends "${browser_missing[@]}" ||
        echo "install-sandbox-deps: WARNING: could not install ${browser_missing[*]}: the agent gets no browser" >&2
    fi
  else
    echo "install-sandbox-deps: WARNING: ${browser_missing[*]} missing: the agent gets no browser" \
      "(apt-get install -y ${browser_missing[*]})" >&2
  fi
else
  say "the sandbox browser (chromium, Xvnc, fonts) is present"
fi

# slirp4netns opens /dev/net/tun as the sandbox's (unprivileged) user. udev makes it 0666 on
# a normal system; minimal VMs and containers without udev may leave it 0600 or missing.
tun=/dev/net/tun
if [ ! -c "$tun" ]; then
  if [ "${sudo[*]}" != false ] && "${sudo[@]}" mkdir -p /dev/net && "${sudo[@]}" mknod -m 0666 "$tun" c 10 200 2>/dev/null; then
    say "created $tun"
  else
    echo "install-sandbox-deps: WARNING: $tun is missing: the sandbox network (network = true) cannot" \
      "start; load the tun module (modprobe tun) or, in a container, pass the device (--device /dev/net/tun)" >&2
  fi
fi
if [ -c "$tun" ] && [ "$(stat -c %a "$tun")" != 666 ]; then
  if [ "${sudo[*]}" != false ] && "${sudo[@]}" chmod 0666 "$tun"; then
    say "made $tun usable by unprivileged users (mode 0666, as udev sets it)"
  else
    echo "install-sandbox-deps: WARNING: $tun has mode $(stat -c %a "$tun"): run as root: chmod 0666 $tun" >&2
  fi
fi

# Smoke test: can bubblewrap create the namespaces the sandbox uses? (A warning only: the
# server's readiness check reports the same problem with the same advice.)
probe=(bwrap --unshare-user --uid 1000 --gid 1000 --unshare-pid --unshare-ipc --unshare-uts
  --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64
  --proc /proc --dev /dev -- /bin/sh -c 'test "$(id -u)" = 1000')
as_user=()
sandbox_uid=$(id -u)
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null 2>&1; then
  sandbox_uid=${SANDBOX_RUN_AS_UID:-60000}
  # As root the server starts bubblewrap as an unprivileged user (run_as_uid, 60000).
  as_user=(setpriv --reuid "${SANDBOX_RUN_AS_UID:-60000}" --regid "${SANDBOX_RUN_AS_GID:-60000}" --clear-groups)
fi
if err=$(cd / && timeout 20 "${as_user[@]}" "${probe[@]}" 2>&1); then
  say "bubblewrap can start sandboxes"
  # The sandbox network: a user and network namespace of the sandbox user with slirp4netns
  # attached (its interface appears), the way the server sets it up.
  ns_pid=""
  slirp_pid=""
  cleanup_probe() {
    kill $slirp_pid $ns_pid 2>/dev/null || true
    wait $slirp_pid $ns_pid 2>/dev/null || true
  }
  (cd / && exec "${as_user[@]}" unshare --user --map-root-user --net sleep 30) &
  ns_pid=$!
  net_ok=false
  slirp_log=$(mktemp)
  for _ in $(seq 50); do
    [ "$(readlink "/proc/$ns_pid/ns/net" 2>/dev/null)" != "$(readlink /proc/self/ns/net)" ] && break
    sleep 0.1
  done
  (cd / && exec "${as_user[@]}" slirp4netns --configure --mtu=65520 --disable-host-loopback \
    --enable-sandbox --enable-seccomp "$ns_pid" tap0 >"$slirp_log" 2>&1) &
  slirp_pid=$!
  for _ in $(seq 50); do
    if grep -q 'tap0:' "/proc/$ns_pid/net/dev" 2>/dev/null; then
      net_ok=true
      break
    fi
    kill -0 "$slirp_pid" 2>/dev/null || break
    sleep 0.1
  done
  cleanup_probe
  if $net_ok; then
    say "slirp4netns can connect sandboxes (network = true)"
  else
    echo "install-sandbox-deps: WARNING: slirp4netns could not connect a test sandbox:" \
      "$(grep -v -e '^\*' -e WARNING "$slirp_log" | tr '\n' ' ')" >&2
    echo "install-sandbox-deps: with network = true no sandbox starts until this works" \
      "(/dev/net/tun usable by uid $sandbox_uid; user namespaces allowed for unshare as well as" \
      "bwrap: on Ubuntu 24.04+ kernel.apparmor_restrict_unprivileged_userns=0); or set network = false" >&2
  fi
  rm -f "$slirp_log"
else
  echo "install-sandbox-deps: WARNING: bubblewrap is installed but could not start a test sandbox: ${err:-no reason given}" >&2
  echo "install-sandbox-deps: user namespaces must be allowed (sysctl user.max_user_namespaces > 0;" \
    "kernel.unprivileged_userns_clone=1 on older Debian; kernel.apparmor_restrict_unprivileged_userns=0" \
    "or an AppArmor profile for bwrap on Ubuntu 24.04+; in a container: seccomp/AppArmor must allow unshare)" >&2
fi
