#!/usr/bin/env bash
# Runs Chromium inside a bubblewrap sandbox as an unprivileged user, the way a session's
# browser runs, for the browser tests:
#   IRONHAND_CHROMIUM=$PWD/crates/browser/tests/chromium-in-bwrap.sh cargo test -p ironhand-browser
# (add IRONHAND_TEST_DISPLAY=:99 for a headed run on an Xvnc/Xvfb display). The pipe on fds 3/4
# passes through bwrap untouched. The profile goes to a tmpfs home inside the sandbox. As root,
# the sandbox runs as uid IH_TEST_UID (default 1234; pick one your firewall lets reach the
# tests' loopback server). This is the smallest set of mounts Chromium was seen to need.
set -euo pipefail
args=()
for a in "$@"; do
  case "$a" in
    --user-data-dir=*) args+=("--user-data-dir=/home/ubuntu/.config/chromium") ;;
    *) args+=("$a") ;;
  esac
done
as_user=()
if [ "$(id -u)" -eq 0 ]; then
  as_user=(setpriv --reuid "${IH_TEST_UID:-1234}" --regid "${IH_TEST_UID:-1234}" --clear-groups)
fi
display=()
if [ -n "${DISPLAY:-}" ]; then
  display=(--ro-bind /tmp/.X11-unix /tmp/.X11-unix --setenv DISPLAY "$DISPLAY")
fi
# (the X socket's bind must follow the /tmp tmpfs, and DISPLAY must follow --clearenv)
exec "${as_user[@]}" bwrap \
  --unshare-user --uid 1000 --gid 1000 --unshare-pid --unshare-ipc --unshare-uts --die-with-parent \
  --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
  --symlink usr/sbin /sbin --ro-bind /etc /etc --ro-bind-try /var/cache/fontconfig /var/cache/fontconfig \
  --proc /proc --dev /dev --tmpfs /tmp --tmpfs /home/ubuntu --chdir /home/ubuntu \
  --clearenv --setenv HOME /home/ubuntu --setenv PATH /usr/bin:/bin "${display[@]}" \
  /usr/lib/chromium/chromium "${args[@]}"
