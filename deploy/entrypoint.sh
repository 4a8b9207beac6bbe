#!/bin/sh
# The server image's entrypoint (under tini): `serve`, `worker`, `migrate`… run `ironhand`
# with those arguments; `fake-llm …` runs the test fake model; any other program name
# (`bash`) runs that program.
#
# Before `serve` and `worker` it prepares what the `local` (bubblewrap) sandbox provider
# uses inside a container, as far as the container's privileges allow (see
# docs/deployment.md, "Container privileges"); whatever is not allowed, the server falls
# back and says so in its `sandboxes containment=…` start line:
#   - /dev/net/tun for slirp4netns (the sandboxes' network);
#   - /dev/loopN nodes when /dev/loop-control was passed in (size-limited workspaces);
#   - with CAP_SYS_ADMIN, when Docker masks parts of /proc (its default): one more, unmasked
#     procfs at /run/ironhand-proc/proc (under a 0700 directory; never visible in a sandbox). The kernel
#     lets bubblewrap mount a sandbox's own /proc only while some proc mount is fully
#     visible; `docker run --security-opt systempaths=unconfined` would do the same to the
#     container's /proc, but Compose cannot pass that option (docker/compose#9505);
#   - with CAP_SYS_ADMIN: the container's own cgroup made writable and the server put in a
#     cgroup namespace rooted there, so each sandbox gets a memory and pids group below
#     the container's (IRONHAND_CONTAINER_CGROUPS=off skips this);
#   - IRONHAND_CAP_DROP=sys_admin,… takes capabilities out of the server's bounding set
#     once the above is done (the API instances of deploy/compose.yaml drop SYS_ADMIN).
set -eu

# Refuse the CHANGE-ME placeholders of deploy/compose.yaml and deploy/.env.example: a
# deployment must not run on secrets that are printed in this repository.
for name in IRONHAND__AUTH__JWT_SECRET IRONHAND__FILES__SIGNING_KEY IRONHAND__MCP__SECRETS_KEY \
  DATABASE_URL REDIS_URL; do
  eval "value=\${$name:-}"
  case $value in
  *CHANGE-ME* | *change-me*)
    echo "ironhand-entrypoint: $name holds a CHANGE-ME placeholder: set the secrets in" \
      "deploy/.env (see deploy/.env.example; openssl rand -hex 32)" >&2
    exit 64
    ;;
  esac
done

# Prints the command prefix that enters a cgroup namespace, when one was prepared.
prepare_sandbox_host() {
  [ "$(id -u)" -eq 0 ] || return 0
  if [ ! -c /dev/net/tun ]; then
    mkdir -p /dev/net
    mknod -m 0666 /dev/net/tun c 10 200 2>/dev/null || true
  fi
  [ -c /dev/net/tun ] && chmod 0666 /dev/net/tun 2>/dev/null || true

  if [ -c /dev/loop-control ] && [ ! -e /dev/loop0 ]; then
    i=0
    while [ $i -lt 256 ]; do
      mknod -m 0660 "/dev/loop$i" b 7 $i 2>/dev/null || break
      i=$((i + 1))
    done
  fi

  # Docker's masked paths are mounts below /proc; bubblewrap's `--proc` needs a proc
  # mount without any (the first awk finds a mount below /proc, the second ours), and
  # writes /proc/sys/user/max_user_namespaces of each sandbox's user namespace, which
  # Docker's read-only /proc/sys refuses: that one directory comes from the unmasked proc.
  if awk '$5 ~ "^/proc/" {found=1} END {exit !found}' /proc/self/mountinfo &&
    ! awk '$5 == "/run/ironhand-proc/proc" {found=1} END {exit !found}' /proc/self/mountinfo; then
    mkdir -p -m 0700 /run/ironhand-proc/proc
    if mount -t proc -o nosuid,nodev,noexec proc /run/ironhand-proc/proc 2>/dev/null; then
      if [ ! -w /proc/sys/user/max_user_namespaces ] || ! : 2>/dev/null >>/proc/sys/user/max_user_namespaces; then
        mount --bind /run/ironhand-proc/proc/sys/user /proc/sys/user 2>/dev/null || true
      fi
    else
      echo "ironhand-entrypoint: /proc is masked and CAP_SYS_ADMIN is missing: sandboxes" \
        "cannot mount their /proc (add cap SYS_ADMIN, or run with" \
        "--security-opt systempaths=unconfined)" >&2
    fi
  fi

  [ "${IRONHAND_CONTAINER_CGROUPS:-auto}" != off ] || return 0
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    # cgroup v2: Docker gives the container a private cgroup namespace; its root is ours.
    if [ -w /sys/fs/cgroup/cgroup.procs ] || mount -o remount,rw /sys/fs/cgroup 2>/dev/null; then
      echo unshare --cgroup
    fi
  elif [ -d /sys/fs/cgroup/memory ] && [ -d /sys/fs/cgroup/pids ]; then
    # cgroup v1: /sys/fs/cgroup/<controller> is the container's own group, mounted
    # read-only; /proc/self/cgroup still names the host's path (/docker/<id>). Make both
    # hierarchies writable and enter a cgroup namespace rooted at the container's group,
    # where the two views agree.
    if mount -o remount,rw,bind /sys/fs/cgroup/memory 2>/dev/null &&
      mount -o remount,rw,bind /sys/fs/cgroup/pids 2>/dev/null; then
      echo unshare --cgroup
    fi
  fi
}

case ${1:-serve} in
serve | worker)
  prefix=$(prepare_sandbox_host)
  if [ -n "${IRONHAND_CAP_DROP:-}" ]; then
    drop=$(echo "$IRONHAND_CAP_DROP" | tr 'A-Z' 'a-z' | sed 's/cap_//g; s/[, ]\{1,\}/,-/g; s/^/-/')
    # after `unshare --cgroup`, which needs the capability
    prefix="$prefix setpriv --bounding-set $drop --"
  fi
  # shellcheck disable=SC2086
  exec $prefix /usr/local/bin/ironhand "$@"
  ;;
fake-llm)
  shift
  exec /usr/local/lib/ironhand/fake-llm --scenarios /usr/local/share/ironhand/scenarios "$@"
  ;;
-* | migrate | user | openapi | check-config | help) exec /usr/local/bin/ironhand "$@" ;;
esac
exec "$@"
