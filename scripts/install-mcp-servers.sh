#!/usr/bin/env bash
# Installs the real third-party MCP servers the ironhand-mcp tests talk to, never downloaded
# by a test itself:
#   - npm: @modelcontextprotocol/server-everything and server-filesystem, `npm ci` in
#     mcp-servers/ from its committed package-lock.json (their dependencies need Node.js 20+);
#   - PyPI: the official `mcp` SDK (pinned with its dependency closure in
#     mcp-servers/requirements.txt) into the venv mcp-servers/.venv, for demo_server.py.
# Idempotent: does nothing when both are installed from the current lock files (a stamp
# holding the lock file's hash). Quiet on success. Everything installed is made
# world-readable: sandboxes running as another uid read the node packages.
set -euo pipefail
dir="$(cd "$(dirname "$0")/../mcp-servers" && pwd)"

fail() {
  echo "install-mcp-servers: $*" >&2
  exit 1
}
hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# --- node servers -------------------------------------------------------------------------
# Node.js 20.19+ with npm, installed when missing or too old (into .tools/node/ unless the
# distribution's is new enough): see scripts/install-node.sh.
"$dir/../scripts/install-node.sh"
PATH="$(dirname "$dir")/.tools/node/bin:$PATH"
export PATH
command -v node >/dev/null 2>&1 || fail "Node.js is missing: install Node.js 20 or newer"
command -v npm >/dev/null 2>&1 || fail "npm is missing: install it with Node.js 20 or newer"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || fail "Node.js $(node --version) is too old for the pinned MCP servers: install 20 or newer"

npm_stamp="$dir/node_modules/.ironhand-installed"
npm_want="$(hash_of "$dir/package-lock.json") node$node_major"
if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ] ||
  [ ! -f "$dir/node_modules/@modelcontextprotocol/server-everything/dist/index.js" ] ||
  [ ! -f "$dir/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js" ]; then
  if ! log=$(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error 2>&1); then
    echo "$log" >&2
    fail "npm ci in mcp-servers/ failed"
  fi
  chmod -R a+rX "$dir/node_modules"
  echo "$npm_want" >"$npm_stamp"
  echo "install-mcp-servers: installed the node MCP servers (npm ci in mcp-servers/)"
fi

# --- python server (venv) -----------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || fail "python3 is missing: install Python 3.10 or newer"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
  fail "$(python3 --version) is too old for the mcp SDK: install Python 3.10 or newer"

venv="$dir/.venv"
py_stamp="$venv/.ironhand-installed"
py_want="$(hash_of "$dir/requirements.txt") $(python3 -c 'import sys; print("py%d.%d" % sys.version_info[:2])')"
if [ ! -f "$py_stamp" ] || [ "$(cat "$py_stamp")" != "$py_want" ] ||
  ! "$venv/bin/python" -c 'import mcp.server.mcpserver' >/dev/null 2>&1; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    # Debian splits ensurepip into python3-venv.
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y --no-install-recommends python3-venv >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y --no-install-recommends python3-venv >/dev/null; } ||
        fail "could not install python3-venv with apt-get"
      python3 -m venv "$venv" || fail "python3 -m venv failed"
    else
      fail "python3 -m venv failed: install the venv module (Debian: apt-get install python3-venv)"
    fi
  fi
  if ! log=$("$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$dir/requirements.txt" 2>&1); then
    echo "$log" >&2
    fail "pip install -r mcp-servers/requirements.txt failed"
  fi
  "$venv/bin/python" -c 'import mcp.server.mcpserver' || fail "the mcp SDK was installed but does not import"
  chmod -R a+rX "$venv"
  echo "$py_want" >"$py_stamp"
  echo "install-mcp-servers: installed the Python MCP SDK into mcp-servers/.venv"
fi
