#!/usr/bin/env bash
# `make api-fuzz` (part of `make test`): schemathesis against the real `ironhand` binary,
# once on SQLite and once on PostgreSQL + Redis. Every operation of the OpenAPI document but
# the few listed below gets a bounded, seeded set of valid and invalid requests; the run
# fails on any 5xx, any answer the document does not describe (status, content type, body,
# stream events), any invalid request the server accepts, and any ERROR in the server log.
#
# Environment: TEST_DATABASE_URL and TEST_REDIS_URL (as for the cargo tests);
# API_FUZZ_BACKENDS ("sqlite postgres"), API_FUZZ_SEED, API_FUZZ_MAX_EXAMPLES (per operation);
# IRONHAND_BIN, FAKE_LLM_BIN and FAKE_STRIPE_BIN (built binaries instead of `cargo build`);
# API_FUZZ_KEEP=1 keeps the work directory (logs, reports) when everything passed too.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

schemathesis_version=4.32.5
venv=$repo/.venv-fuzz
seed=${API_FUZZ_SEED:-1414}
max_examples=${API_FUZZ_MAX_EXAMPLES:-100}
backends=${API_FUZZ_BACKENDS:-sqlite postgres}
: "${TEST_DATABASE_URL:=postgres://postgres@127.0.0.1:5432/test}"
: "${TEST_REDIS_URL:=redis://127.0.0.1:6379}"

# Operations left out, each with its reason (printed at every run). Everything else in the
# document is fuzzed.
exclusions=(
  "POST /api/v1/billing/webhook|an event counts only with a valid Stripe-Signature, which a fuzzer cannot make (the billing tests cover the webhook)"
  "GET /api/v1/sessions/{id}/vnc|a WebSocket upgrade (the live view), not a request and an answer (the live-view tests cover it)"
  "POST /api/v1/auth/logout|it revokes the fuzzer's own access token (the auth tests cover it)"
  "POST /api/v1/auth/logout-all|it revokes the fuzzer's own access token (the auth tests cover it)"
)

say() { echo "api-fuzz: $*" >&2; }
fail() {
  say "$*"
  exit 1
}

# --- schemathesis, in a project-local virtualenv ----------------------------------------
python=${PYTHON:-python3}
command -v "$python" >/dev/null 2>&1 || fail "python3 is missing: install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  fail "$("$python" --version) is too old for schemathesis $schemathesis_version: install Python 3.11 or newer"
for tool in curl psql redis-cli; do
  command -v "$tool" >/dev/null 2>&1 || fail "$tool is missing (Debian: apt-get install curl postgresql-client redis-tools)"
done
if [ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $schemathesis_version" ]; then
  say "installing schemathesis $schemathesis_version into ${venv#"$repo"/}/"
  rm -rf "$venv"
  "$python" -m venv "$venv" || fail "could not create a virtualenv (Debian: apt-get install python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi
schemathesis=$venv/bin/schemathesis

# --- the server, and the fake model and fake Stripe it talks to -------------------------
if [ -n "${IRONHAND_BIN:-}" ] && [ -n "${FAKE_LLM_BIN:-}" ] && [ -n "${FAKE_STRIPE_BIN:-}" ]; then
  server_bin=$IRONHAND_BIN
  llm_bin=$FAKE_LLM_BIN
  stripe_bin=$FAKE_STRIPE_BIN
else
  cargo build --locked -p ironhand-server --bin ironhand -p ironhand-fakes --bin fake-llm --bin fake-stripe
  target_dir=$(cargo metadata --format-version 1 --no-deps | "$python" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  server_bin=$target_dir/debug/ironhand
  llm_bin=$target_dir/debug/fake-llm
  stripe_bin=$target_dir/debug/fake-stripe
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ironhand-api-fuzz.XXXXXX")
# the sandbox user (uid 60000 when run as root) must be able to reach the workspaces
chmod 755 "$work"
pids=()
databases=()
redis_prefixes=()
status=1

cleanup() {
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  for db in "${databases[@]}"; do
    psql "$TEST_DATABASE_URL" -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 ||
      say "could not drop the database $db (make clean-test-databases will)"
  done
  for prefix in "${redis_prefixes[@]}"; do
    redis-cli -u "$TEST_REDIS_URL" --scan --pattern "$prefix*" 2>/dev/null |
      xargs -r -n 500 redis-cli -u "$TEST_REDIS_URL" DEL >/dev/null 2>&1 || true
  done
  if [ "$status" -eq 0 ] && [ -z "${API_FUZZ_KEEP:-}" ]; then
    rm -rf "$work"
  else
    say "server logs and schemathesis reports are in $work"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# TEST_DATABASE_URL with another database name.
database_url() {
  "$python" -c '
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
print(urllib.parse.urlunsplit(u._replace(path="/" + sys.argv[2])))' "$TEST_DATABASE_URL" "$1"
}

# A field of the JSON on stdin: `json_field data.session_id`.
json_field() {
  "$python" -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1].split("."):
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"
}

say "logs and reports go to $work (removed after a clean run unless API_FUZZ_KEEP=1)"
for op in "${exclusions[@]}"; do
  say "not fuzzed: ${op%%|*}: ${op#*|}"
done

wait_for_line() { # file pattern what
  for _ in $(seq 1 100); do
    grep -q "$2" "$1" && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || fail "$3 exited at start (log: $work/$3.log)"
    sleep 0.1
  done
  fail "$3 did not start within 10 s (log: $work/$3.log)"
}

stripe_config=$work/stripe.toml
"$stripe_bin" >"$stripe_config" 2>"$work/fake-stripe.log" &
pids+=("$!")
wait_for_line "$stripe_config" '^price_pro' fake-stripe

# Every task fails at once (HTTP 500, no retry) unless its text asks for another scenario:
# the first task plays `two_steps`, which leaves a shell and a file in the session's sandbox.
"$llm_bin" --default always_500 >"$work/fake-llm.out" 2>"$work/fake-llm.log" &
pids+=("$!")
wait_for_line "$work/fake-llm.out" '^listening on ' fake-llm
llm_url=$(sed -n 's/^listening on //p' "$work/fake-llm.out")

# A real MCP server (the Python SDK's, installed by scripts/install-mcp-servers.sh) for the
# connector the fuzzer tests: users may reach it on loopback in this configuration.
mcp_port=$(free_port)
mcp-servers/.venv/bin/python mcp-servers/demo_server.py streamable-http 127.0.0.1 "$mcp_port" \
  >"$work/mcp-demo.log" 2>&1 &
pids+=("$!")
for _ in $(seq 1 150); do
  curl -s -o /dev/null "http://127.0.0.1:$mcp_port/mcp" && break
  kill -0 "${pids[-1]}" 2>/dev/null || fail "the demo MCP server exited at start (log: $work/mcp-demo.log)"
  sleep 0.1
done

# While a backend is prepared (with `fuzz`'s `api`, `token`, `name` and `log`): prints the
# answer's body; an error status stops everything.
call() { # method path [curl arguments…]
  local method=$1 path=$2
  shift 2
  curl -fsS -X "$method" "$api$path" -H "Authorization: Bearer $token" "$@" ||
    fail "$name: preparing the fuzz run: $method $path failed (log: $log)"
}

# --- one backend ------------------------------------------------------------------------
fuzz() { # sqlite | postgres
  local name=$1
  local dir=$work/$name
  mkdir -p "$dir"
  chmod 755 "$dir"
  local port
  port=$(free_port)
  local base=http://127.0.0.1:$port
  local api=$base/api/v1
  local log=$dir/server.log
  local backend_config=""
  case $name in
  sqlite) ;;
  postgres)
    local db
    db=ironhand_test_fuzz_$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
    psql "$TEST_DATABASE_URL" -qc "CREATE DATABASE \"$db\"" >/dev/null ||
      fail "could not create a database through TEST_DATABASE_URL=$TEST_DATABASE_URL"
    databases+=("$db")
    local prefix="ironhand-fuzz:$db:"
    redis_prefixes+=("$prefix")
    backend_config=$(printf '[database]\nurl = "%s"\n\n[redis]\nurl = "%s"\nkey_prefix = "%s"\n' \
      "$(database_url "$db")" "$TEST_REDIS_URL" "$prefix")
    ;;
  *) fail "unknown backend $name (sqlite or postgres)" ;;
  esac

  local config=$dir/ironhand.toml
  cat >"$config" <<EOF
[server]
bind = "127.0.0.1:$port"
admin_bind = ""
public_url = "$base"
data_dir = "$dir/data"
shutdown_grace_secs = 2
# A stream the fuzzer left keeps its slot until the server's next write to it.
max_streams_per_user = 1000

[log]
level = "warn"
format = "json"

[auth]
registration_open = true
argon2_memory_kib = 1024
argon2_iterations = 1

# High enough that fuzzing is never throttled; the limiter still counts every request.
[rate_limits]
register = "100000/minute"
login = "100000/minute"
login_ip = "100000/minute"
login_email = "100000/minute"
refresh = "100000/minute"
logout = "100000/minute"
send_verification_code = "100000/minute"
verification_code_cooldown = "100000/minute"
reset_password = "100000/minute"
change_password = "100000/minute"
chat_user = "100000/minute"
chat_session = "100000/minute"
shared_view = "100000/minute"
upload = "100000/minute"
checkout = "100000/minute"

[llm]
base_url = "$llm_url"
model = "fake-model"
max_retries = 0

[sandbox]
network = false
# the server is stopped at the end: plain workspace directories leave no mounts behind
workspace_max_bytes = 0

[mcp]
user_private_urls = true

$(cat "$stripe_config")

$backend_config
EOF

  # The fuzzer is an administrator (so the admin routes are reached, not just refused);
  # its password comes from the environment, as `ironhand user create` documents.
  local password="fuzzing password"
  IRONHAND_USER_PASSWORD=$password "$server_bin" --config "$config" user create \
    --email fuzzer@example.com --fullname "API Fuzzer" --admin >>"$log" 2>&1 ||
    fail "$name: could not create the fuzzer's account (log: $log)"

  LLM_API_KEY=fake-key "$server_bin" --config "$config" serve >>"$log" 2>&1 &
  pids+=("$!")
  local up=""
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$api/health" 2>/dev/null; then
      up=1
      break
    fi
    kill -0 "${pids[-1]}" 2>/dev/null || fail "$name: the server exited at start (log: $log)"
    sleep 0.2
  done
  [ -n "$up" ] || fail "$name: the server did not answer within 60 s (log: $log)"

  # What the fuzzer gets to work on: its token, another account, sessions, files.
  local token=""
  token=$(call POST /auth/login -H 'Content-Type: application/json' \
    -d "{\"email\":\"fuzzer@example.com\",\"password\":\"$password\"}" | json_field data.access_token)
  local other_user
  other_user=$(call POST /auth/register -H 'Content-Type: application/json' \
    -d '{"fullname":"Other User","email":"other@example.com","password":"another password"}' |
    json_field data.user.id)
  local session spare_session
  session=$(call PUT /sessions | json_field data.session_id)
  spare_session=$(call PUT /sessions | json_field data.session_id)
  call POST "/sessions/$session/share" >/dev/null
  local fixtures=$dir/fixtures
  mkdir -p "$fixtures"
  printf 'plain text\n' >"$fixtures/notes.txt"
  printf '{"a": [1, 2, 3]}\n' >"$fixtures/data.json"
  printf '<p>never rendered</p>\n' >"$fixtures/page.html"
  local text_file json_file html_file spare_file
  text_file=$(call POST /files -F "file=@$fixtures/notes.txt" | json_field data.file_id)
  json_file=$(call POST /files -F "file=@$fixtures/data.json" | json_field data.file_id)
  html_file=$(call POST /files -F "file=@$fixtures/page.html" | json_field data.file_id)
  spare_file=$(call POST /files -F "file=@$fixtures/notes.txt" | json_field data.file_id)
  # Two connectors: one to test (the demo MCP server), one for the deletes.
  call PUT /mcp/servers -H 'Content-Type: application/json' \
    -d "{\"name\":\"fuzz-remote\",\"transport\":\"streamable-http\",\"url\":\"http://127.0.0.1:$mcp_port/mcp\",\"headers\":{\"Authorization\":\"Bearer fuzz\"}}" >/dev/null
  call PUT /mcp/servers -H 'Content-Type: application/json' \
    -d '{"name":"fuzz-spare","transport":"sse","url":"https://mcp.example.invalid/sse"}' >/dev/null
  # A first task with the files attached: the session then has events of every kind, files,
  # and a live sandbox with the shell `main` and /home/ubuntu/hello.py. (fake-llm plays a
  # scenario once per task text, hence the backend's name in it.)
  call POST "/sessions/$session/chat" -H 'Content-Type: application/json' --max-time 120 \
    -d "{\"message\":\"[scenario:two_steps] Summarise these files ($name)\",\"attachments\":[{\"file_id\":\"$text_file\"},{\"file_id\":\"$json_file\"},{\"file_id\":\"$html_file\"}]}" \
    >"$fixtures/first-task.sse"
  grep -q '"command":"python3 hello.py"' "$fixtures/first-task.sse" && grep -q '^event: done' "$fixtures/first-task.sse" ||
    fail "$name: the first task did not run its program in the sandbox (see $fixtures/first-task.sse and $log)"
  local signed
  signed=$(call POST "/files/$text_file/signed-url" -H 'Content-Type: application/json' \
    -d '{"expire_minutes":15}' | json_field data.signed_url)
  local signature expires
  signature=$(sed -E 's/.*[?&]signature=([^&]*).*/\1/' <<<"$signed")
  expires=$(sed -E 's/.*[?&]expires=([^&]*).*/\1/' <<<"$signed")

  # Half of the generated ids are these real ones (deletes get their own), and most signed
  # downloads use the real signature.
  local st_config=$dir/schemathesis.toml
  {
    for op in "${exclusions[@]}"; do
      printf '[[operations]]\ninclude-name = "%s"\nenabled = false\n\n' "${op%%|*}"
    done
    cat <<EOF
# Crashes are kept for \`st replay\` next to the reports, so no run replays another's.
[cache]
directory = "$dir/cache"

[dictionaries]
sessions = { values = ["$session"] }
spare_sessions = { values = ["$spare_session"] }
files = { values = ["$text_file", "$json_file", "$html_file"] }
signed_files = { values = ["$text_file"] }
spare_files = { values = ["$spare_file"] }
users = { values = ["$other_user"] }
shells = { values = ["main"] }
sandbox_files = { values = ["/home/ubuntu/hello.py"] }
connectors = { values = ["fuzz-remote"] }
spare_connectors = { values = ["fuzz-spare"] }
signatures = { values = ["$signature"] }
expiries = { values = [$expires] }

# Streams that never end on their own: their first event is enough.
[[operations]]
include-name = ["POST /api/v1/sessions", "GET /api/v1/billing/subscription/stream"]
max-stream-events = 1

[[operations]]
include-name-regex = "^DELETE /api/v1/sessions/\\\\{id\\\\}(/share)?$"
parameters = { "path.id" = { dictionary = "spare_sessions", probability = 0.5 } }

[[operations]]
include-name = "POST /api/v1/sessions/{id}/shell"
parameters = { "path.id" = { dictionary = "sessions", probability = 0.5 }, "body.session_id" = { dictionary = "shells", probability = 0.5 } }

[[operations]]
include-name = "POST /api/v1/sessions/{id}/file"
parameters = { "path.id" = { dictionary = "sessions", probability = 0.5 }, "body.file" = { dictionary = "sandbox_files", probability = 0.5 } }

[[operations]]
include-name-regex = "^(GET|POST) /api/v1/sessions/(shared/)?\\\\{id\\\\}(?!/(shell|file)$)"
parameters = { "path.id" = { dictionary = "sessions", probability = 0.5 } }

[[operations]]
include-name = "POST /api/v1/mcp/servers/{name}/test"
parameters = { "path.name" = { dictionary = "connectors", probability = 0.5 } }

[[operations]]
include-name = "DELETE /api/v1/mcp/servers/{name}"
parameters = { "path.name" = { dictionary = "spare_connectors", probability = 0.5 } }

[[operations]]
include-name = "DELETE /api/v1/files/{id}"
parameters = { "path.id" = { dictionary = "spare_files", probability = 0.5 } }

[[operations]]
include-name = "GET /api/v1/files/{id}"
parameters = { "path.id" = { dictionary = "signed_files", probability = 0.75 }, "query.signature" = { dictionary = "signatures", probability = 0.75 }, "query.expires" = { dictionary = "expiries", probability = 0.75 } }

[[operations]]
include-path-regex = "^/api/v1/files/\\\\{id\\\\}/"
parameters = { "path.id" = { dictionary = "files", probability = 0.5 } }

[[operations]]
include-path-regex = "^/api/v1/auth/user/\\\\{id\\\\}"
parameters = { "path.id" = { dictionary = "users", probability = 0.5 } }
EOF
  } >"$st_config"

  # Stateful runs (chains of calls) are off: each operation gets its own bounded examples.
  # No stored examples from earlier runs, and no NUL in valid text (the document says a NUL
  # is a 422 everywhere, so such examples would never get past the first check).
  local args=(
    run "$api/openapi.json"
    --seed "$seed"
    --max-examples "$max_examples"
    --phases examples,coverage,fuzzing
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection
    --continue-on-failure
    --workers 2
    --request-timeout 30
    --generation-database none
    --generation-allow-x00 false
    --no-color
    --report junit,har
    --report-dir "$dir/report"
  )
  say "$name: $schemathesis --config-file $st_config ${args[*]} --header 'Authorization: Bearer …'"
  local started=$SECONDS rc=0
  "$schemathesis" --config-file "$st_config" "${args[@]}" --header "Authorization: Bearer $token" || rc=$?
  say "$name: schemathesis took $((SECONDS - started)) s and exited with $rc"
  if grep -q '"level":"ERROR"' "$log"; then
    say "$name: the server logged errors (all in $log):"
    grep '"level":"ERROR"' "$log" | tail -n 20 >&2
    rc=1
  fi
  if [ "$rc" -ne 0 ]; then
    failed+=("$name")
  fi
}

# Not `fuzz … || …`: that would turn off `set -e` inside it.
failed=()
for backend in $backends; do
  fuzz "$backend"
done
if [ "${#failed[@]}" -gt 0 ]; then
  fail "findings on: ${failed[*]}"
fi
status=0
say "no findings on: $backends"
