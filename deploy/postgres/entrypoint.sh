#!/bin/bash
# ironhand-postgres: the official postgres image's contract, in short.
#   POSTGRES_USER (postgres)       the superuser made by initdb
#   POSTGRES_PASSWORD              its password; required unless POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_DB ($POSTGRES_USER)   a database created on first start
#   POSTGRES_HOST_AUTH_METHOD      scram-sha-256 (default) or trust, for connections over TCP
#   /docker-entrypoint-initdb.d/*.sql, *.sh   run once, after the first initdb
# On an empty $PGDATA: initdb, listen on all interfaces, then exec postgres as `postgres`.
set -euo pipefail

: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"
export PGDATA

if [ "${1:-postgres}" != postgres ]; then
  exec "$@"
fi

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    setpriv --reuid postgres --regid postgres --init-groups -- "$@"
  else
    "$@"
  fi
}

if [ "$(id -u)" -eq 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 0700 "$PGDATA"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
    echo "postgres-entrypoint: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust, for tests only)" >&2
    exit 1
  fi
  pwfile=$(mktemp)
  chown postgres "$pwfile"
  printf '%s\n' "${POSTGRES_PASSWORD:-postgres}" >"$pwfile"
  as_postgres initdb --username="$POSTGRES_USER" --pwfile="$pwfile" \
    --encoding=UTF8 --locale=C.UTF-8 --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD" >/dev/null
  rm -f "$pwfile"
  {
    echo "listen_addresses = '*'"
    echo "password_encryption = scram-sha-256"
  } >>"$PGDATA/postgresql.conf"
  # Any address over TCP, with the chosen method (the container's network is the boundary
  # for trust; scram-sha-256 otherwise).
  {
    echo "host all all 0.0.0.0/0 $POSTGRES_HOST_AUTH_METHOD"
    echo "host all all ::/0 $POSTGRES_HOST_AUTH_METHOD"
  } >>"$PGDATA/pg_hba.conf"

  # Create the database and run init scripts on a server that listens on the socket only.
  as_postgres pg_ctl -D "$PGDATA" -w -o "-c listen_addresses=''" start >/dev/null
  if [ "$POSTGRES_DB" != postgres ]; then
    as_postgres psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d postgres \
      -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for f in /docker-entrypoint-initdb.d/*; do
    case $f in
    *.sql) as_postgres psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f" ;;
    *.sh) . "$f" ;;
    esac
  done
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "postgres-entrypoint: initialised $PGDATA (user $POSTGRES_USER, database $POSTGRES_DB)"
fi

shift || true
if [ "$(id -u)" -eq 0 ]; then
  exec setpriv --reuid postgres --regid postgres --init-groups -- postgres "$@"
fi
exec postgres "$@"
