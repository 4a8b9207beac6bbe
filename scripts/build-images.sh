#!/usr/bin/env bash
# Builds Ironhand's container images from Debian packages, with no registry pull:
#
#   local/debian:bookworm        mmdebstrap --variant=minbase → docker import (skipped when
#                                the image exists; FORCE_BASE=1 rebuilds it)
#   ironhand:<version>, :latest  deploy/Dockerfile: the server (`ironhand serve|worker`)
#   ironhand-sandbox:<version>   deploy/sandbox/Dockerfile: the sandbox image of
#                                `sandbox.provider = "docker"`
#   ironhand-sandbox-test:1      deploy/sandbox/Dockerfile.test: the tests' light sandbox image
#                                (no packages; the tests mount their own daemon binary)
#   ironhand-postgres:15         deploy/postgres/Dockerfile (stands in for `postgres:15`)
#   ironhand-redis:7             deploy/redis/Dockerfile (stands in for `redis:7`)
#
# usage: scripts/build-images.sh [base|server|sandbox|sandbox-test|postgres|redis|all]...   (default: all)
#
# The server and sandbox images copy target/release/ironhand (and fake-llm when it exists,
# for the compose smoke test): build it first (`make build`, or `make images`, which does).
# Rebuilding with nothing changed reuses Docker's layer cache and takes seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD

BASE_IMAGE=${BASE_IMAGE:-local/debian:bookworm}
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BINARY=${IRONHAND_BINARY:-target/release/ironhand}
FAKE_LLM=${FAKE_LLM_BINARY:-target/release/fake-llm}
CONTEXTS=target/docker-context

say() { echo "build-images: $*"; }
fail() {
  echo "build-images: $*" >&2
  exit 1
}

# The workspace version: [workspace.package] version in Cargo.toml.
VERSION=$(awk '/^\[workspace.package\]/{p=1;next} /^\[/{p=0} p && /^version *=/{gsub(/[" ]/,"",$0); sub(/version=/,"",$0); print; exit}' Cargo.toml)
[ -n "$VERSION" ] || fail "no version in [workspace.package] of Cargo.toml"

docker info >/dev/null 2>&1 || fail "no Docker Engine answers: run scripts/install-docker.sh (as root) first"

elapsed() { echo "$(($(date +%s) - $1)) s"; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

build_base() {
  if image_exists "$BASE_IMAGE" && [ -z "${FORCE_BASE:-}" ]; then
    say "$BASE_IMAGE exists (FORCE_BASE=1 rebuilds it)"
    return
  fi
  command -v mmdebstrap >/dev/null 2>&1 || fail "mmdebstrap is missing: run scripts/install-docker.sh, or apt-get install -y mmdebstrap"
  local start tmp
  start=$(date +%s)
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "rm -rf '$tmp'" RETURN
  say "building $BASE_IMAGE with mmdebstrap ($SUITE from $MIRROR)"
  # minbase: essential packages + apt. The security and updates suites are in the image's
  # sources, so every `apt-get install` in the Dockerfiles gets the current fixes.
  mmdebstrap --quiet --variant=minbase \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    "$SUITE" "$tmp/base.tar" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY_MIRROR $SUITE-security main"
  docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    --message "mmdebstrap --variant=minbase $SUITE ($(date -u +%Y-%m-%d))" \
    "$tmp/base.tar" "$BASE_IMAGE" >/dev/null
  say "$BASE_IMAGE built in $(elapsed "$start") ($(image_size "$BASE_IMAGE"))"
}

image_size() {
  docker image inspect --format '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1000000}'
}

# A small build context per image (the repository with its target/ would be gigabytes, and
# deploy/.env holds secrets): exactly the files the image copies. Files are replaced only
# when they changed, and Docker's cache keys on their contents anyway.
stage() {
  local name=$1
  shift
  local dir=$CONTEXTS/$name
  mkdir -p "$dir"
  local file
  for file in "$@"; do
    [ -f "$file" ] || continue
    if ! cmp -s "$file" "$dir/$(basename "$file")"; then
      cp -p "$file" "$dir/$(basename "$file")"
    fi
  done
  echo "$dir"
}

need_binary() {
  [ -x "$BINARY" ] || fail "$BINARY is missing: run \`make build\` (or \`cargo build --release -p ironhand-server --bin ironhand\`) first"
}

docker_build() {
  local dir=$1
  shift
  local start
  start=$(date +%s)
  if [ -n "${VERBOSE:-}" ]; then
    docker build "$@" "$dir"
  else
    local log
    log=$(mktemp)
    if ! docker build "$@" "$dir" >"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      fail "docker build $* failed"
    fi
    rm -f "$log"
  fi
  say "$(grep -o -- '-t [^ ]*' <<<"$*" | head -n1 | cut -c4-) ready in $(elapsed "$start")"
}

build_server() {
  need_binary
  local dir
  dir=$(stage server deploy/Dockerfile deploy/entrypoint.sh "$BINARY" "$FAKE_LLM")
  # The fake model's scenarios (the compose smoke test runs fake-llm from this image).
  mkdir -p "$dir/scenarios"
  cp -p crates/fakes/scenarios/*.json "$dir/scenarios/"
  [ -f "$dir/fake-llm" ] || : >"$dir/fake-llm" # an empty placeholder keeps the COPY valid
  docker_build "$dir" -t "ironhand:$VERSION" -t ironhand:latest \
    --build-arg "BASE=$BASE_IMAGE" --build-arg "VERSION=$VERSION" -f "$dir/Dockerfile"
}

build_sandbox() {
  need_binary
  local dir
  dir=$(stage sandbox deploy/sandbox/Dockerfile "$BINARY")
  docker_build "$dir" -t "ironhand-sandbox:$VERSION" -t ironhand-sandbox:latest \
    --build-arg "BASE=$BASE_IMAGE" --build-arg "VERSION=$VERSION"
}

build_sandbox_test() {
  local dir
  dir=$(stage sandbox-test deploy/sandbox/Dockerfile.test)
  docker_build "$dir" -t ironhand-sandbox-test:1 --build-arg "BASE=$BASE_IMAGE" -f "$dir/Dockerfile.test"
}

build_postgres() {
  local dir
  dir=$(stage postgres deploy/postgres/Dockerfile deploy/postgres/entrypoint.sh)
  docker_build "$dir" -t ironhand-postgres:15 --build-arg "BASE=$BASE_IMAGE"
}

build_redis() {
  local dir
  dir=$(stage redis deploy/redis/Dockerfile deploy/redis/entrypoint.sh)
  docker_build "$dir" -t ironhand-redis:7 --build-arg "BASE=$BASE_IMAGE"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(all)
for t in "${targets[@]}"; do
  case $t in
  base) build_base ;;
  server) build_base && build_server ;;
  sandbox) build_base && build_sandbox ;;
  sandbox-test) build_base && build_sandbox_test ;;
  postgres) build_base && build_postgres ;;
  redis) build_base && build_redis ;;
  all) build_base && build_server && build_sandbox && build_postgres && build_redis ;;
  *) fail "unknown image $t (base, server, sandbox, sandbox-test, postgres, redis, all)" ;;
  esac
done
if [ -z "${QUIET:-}" ]; then
  docker image ls --format '{{.Repository}}:{{.Tag}}\t{{.Size}}' |
    grep -E "^(local/debian|ironhand|ironhand-sandbox|ironhand-postgres|ironhand-redis):" |
    grep -v ':latest' | sed 's/^/build-images:   /' || true
fi
