#!/usr/bin/env bash
# Installs the web app's packages (`npm ci` in web/, from package-lock.json) after checking
# that Node.js is new enough for Vite 8 (20.19+) and npm is there. Debian 12's own nodejs
# (18) is too old, so a missing or old Node.js is reported with what to do, not installed.
set -euo pipefail
cd "$(dirname "$0")/../web"

fail() {
  echo "install-web-deps: $*" >&2
  exit 1
}
command -v node >/dev/null 2>&1 || fail "Node.js is missing: install Node.js 20.19 or newer (https://nodejs.org, or NodeSource's Debian packages)"
command -v npm >/dev/null 2>&1 || fail "npm is missing: install it with Node.js 20.19 or newer"
version=$(node -p 'process.versions.node')
IFS=. read -r major minor _ <<<"$version"
if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; }; then
  fail "Node.js $version is too old for the web app's build (Vite 8): install 20.19 or newer"
fi
echo "install-web-deps: npm ci (Node.js $version)"
npm ci --no-audit --no-fund
