#!/bin/sh
# ironhand-redis: redis-server on all interfaces, data (append-only file) in /data, run as
# `redis`. REDIS_PASSWORD, when set, is required of every client (`redis://:PASSWORD@host`).
# Extra arguments go to redis-server (`redis-server --maxmemory 256mb`).
set -eu

if [ "${1:-redis-server}" != redis-server ]; then
  exec "$@"
fi
shift || true

set -- --bind 0.0.0.0 --protected-mode no --port 6379 --dir /data \
  --appendonly yes --appendfsync everysec "$@"
if [ -n "${REDIS_PASSWORD:-}" ]; then
  # Through a config file on stdin, so the password is not in the process list.
  if [ "$(id -u)" -eq 0 ]; then
    chown redis:redis /data
    printf 'requirepass "%s"\n' "$REDIS_PASSWORD" | exec setpriv --reuid redis --regid redis --init-groups -- redis-server - "$@"
  fi
  printf 'requirepass "%s"\n' "$REDIS_PASSWORD" | exec redis-server - "$@"
fi
if [ "$(id -u)" -eq 0 ]; then
  chown redis:redis /data
  exec setpriv --reuid redis --regid redis --init-groups -- redis-server "$@"
fi
exec redis-server "$@"
