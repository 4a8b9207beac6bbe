#!/usr/bin/env bash
# Smoke test of deploy/compose.yaml: brings the stack up from locally built images (two API
# instances, two workers, PostgreSQL, Redis, plus the fake model of deploy/compose.smoke.yaml),
# waits for /api/v1/ready through one API instance, registers a user, creates a session,
# runs one task through the fake model on a worker (its sandbox runs `python3 hello.py`),
# checks that the stream ends with `event: done` and that the other API instance serves
# the same session, then tears everything down (`down -v`).
#
# Exits 0 with "skipped: …" only where no Docker Engine can start (scripts/install-docker.sh
# exit code 2). SKIP_CARGO=1 uses the binaries already in target/release; KEEP=1 leaves the
# stack up for a look (then: docker-compose -p ironhand-smoke -f deploy/compose.yaml down -v).
set -euo pipefail

cd "$(dirname "$0")/.."
PROJECT=${SMOKE_PROJECT:-ironhand-smoke}
start=$(date +%s)

say() { echo "compose-smoke: $*"; }
fail() {
  echo "compose-smoke: FAILED: $*" >&2
  exit 1
}

rc=0
scripts/install-docker.sh || rc=$?
if [ "$rc" -eq 2 ]; then
  say "skipped: no Docker Engine can start here (see the message above)"
  exit 0
elif [ "$rc" -ne 0 ]; then
  fail "could not install Docker (scripts/install-docker.sh exited $rc)"
fi
for tool in curl jq; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is needed (apt-get install -y $tool)"
done

if [ -z "${SKIP_CARGO:-}" ]; then
  say "building the release binaries (ironhand, fake-llm)"
  cargo build --release --locked -q -p ironhand-server --bin ironhand -p ironhand-fakes --bin fake-llm
fi
[ -x "${FAKE_LLM_BINARY:-target/release/fake-llm}" ] || fail "${FAKE_LLM_BINARY:-target/release/fake-llm} is missing (cargo build --release -p ironhand-fakes --bin fake-llm)"
QUIET=1 scripts/build-images.sh server sandbox postgres redis

work=$(mktemp -d)
compose=(docker-compose -p "$PROJECT" --env-file "$work/env" -f deploy/compose.yaml -f deploy/compose.smoke.yaml)
# The sandbox containers and volumes the instances made (compose does not know them).
# shellcheck disable=SC2086 # the ids are meant to split
remove_sandboxes() {
  local label=label=io.ironhand.deployment=$PROJECT ids
  ids=$(docker ps -aq --filter "$label" 2>/dev/null || true)
  [ -z "$ids" ] || docker rm -f $ids >/dev/null 2>&1 || true
  ids=$(docker volume ls -q --filter "$label" 2>/dev/null || true)
  [ -z "$ids" ] || docker volume rm -f $ids >/dev/null 2>&1 || true
}
# shellcheck disable=SC2317
cleanup() {
  local status=$?
  if [ $status -ne 0 ]; then
    echo "compose-smoke: the last lines of every service's log:" >&2
    "${compose[@]}" logs --no-color --tail=40 >&2 2>&1 || true
  fi
  if [ -n "${KEEP:-}" ]; then
    say "KEEP=1: the stack stays up (${compose[*]} down -v)"
  else
    remove_sandboxes
    "${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
  exit $status
}
trap cleanup EXIT

hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }
cat >"$work/env" <<ENV
POSTGRES_PASSWORD=$(hex 16)
REDIS_PASSWORD=$(hex 16)
IRONHAND_JWT_SECRET=$(hex 32)
IRONHAND_FILES_SIGNING_KEY=$(hex 32)
IRONHAND_MCP_SECRETS_KEY=$(hex 32)
IRONHAND_PUBLIC_URL=http://localhost:8000
IRONHAND_API1_PUBLISH=127.0.0.1:
IRONHAND_API2_PUBLISH=127.0.0.1:
LLM_BASE_URL=http://fake-llm:4010/v1
LLM_MODEL=fake
IRONHAND_DEPLOYMENT=$PROJECT
ENV

remove_sandboxes
"${compose[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
say "docker-compose up -d (project $PROJECT)"
"${compose[@]}" up -d --quiet-pull 2>&1 | sed 's/^/  /'

port_of() { "${compose[@]}" port "$1" 8000 | tail -n1 | sed 's/.*://'; }
API1=http://127.0.0.1:$(port_of api1)/api/v1
API2=http://127.0.0.1:$(port_of api2)/api/v1

ready=""
for _ in $(seq 120); do
  if ready=$(curl -fsS --max-time 15 "$API1/ready" 2>/dev/null); then
    break
  fi
  ready=""
  sleep 1
done
[ -n "$ready" ] || fail "api1 never answered /api/v1/ready: $(curl -sS --max-time 15 "$API1/ready" 2>&1)"
say "api1 ready: $(jq -c '.data // .' <<<"$ready")"

email="smoke-$(hex 4)@example.com"
token=$(curl -fsS "$API1/auth/register" -H 'Content-Type: application/json' \
  -d "{\"fullname\":\"Smoke Test\",\"email\":\"$email\",\"password\":\"a long smoke password\"}" |
  jq -r .data.access_token)
[ -n "$token" ] && [ "$token" != null ] || fail "registration failed"
session=$(curl -fsS -X PUT "$API1/sessions" -H "Authorization: Bearer $token" | jq -r .data.session_id)
[ -n "$session" ] && [ "$session" != null ] || fail "could not create a session"
say "registered $email, session $session"

say "running a task through the fake model (two_steps) on a worker"
curl -sS -N --max-time 180 "$API1/sessions/$session/chat" -H "Authorization: Bearer $token" \
  -H 'Content-Type: application/json' \
  -d '{"message":"[scenario:two_steps] Write hello.py, run it and tell me what it prints (compose smoke)"}' \
  >"$work/chat.sse" || true
last=$(grep '^event:' "$work/chat.sse" | tail -n1)
if [ "$last" != "event: done" ]; then
  echo "compose-smoke: the stream:" >&2
  cut -c1-300 "$work/chat.sse" >&2
  fail "the stream did not end with 'event: done' (last: ${last:-none})"
fi
grep -q 'Hello from Ironhand! 1+2+...+10 = 55' "$work/chat.sse" ||
  fail "the sandbox's output (python3 hello.py) is not in the stream"
grep -q '^event: error' "$work/chat.sse" && fail "the run reported an error: $(grep -A1 '^event: error' "$work/chat.sse" | tail -n1)"
say "the stream ended with event: done ($(grep -c '^event:' "$work/chat.sse") events; the sandbox printed the expected line)"

# The other API instance serves the same session (shared PostgreSQL, Redis, JWT secret).
events=$(curl -fsS "$API2/sessions/$session" -H "Authorization: Bearer $token" | jq '.data.events | length')
[ "${events:-0}" -gt 0 ] || fail "api2 does not see the session's events"
who=$("${compose[@]}" logs --no-color worker1 worker2 2>/dev/null | grep -c "$session" || true)
say "api2 serves the session too ($events events); worker log lines naming it: $who"

say "passed in $(($(date +%s) - start)) s"
