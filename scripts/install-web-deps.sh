#!/usr/bin/env bash
# Installs the web app's packages (`npm ci` in web/, from package-lock.json) with Node.js
# 20.19 or newer (Vite 8) and npm: scripts/install-node.sh first makes sure there is one,
# installing it when missing or too old (Debian 12's own is 18) from the distribution when
# new enough there, else from PyPI into .tools/node/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

"$root/scripts/install-node.sh"
export PATH="$root/.tools/node/bin:$PATH"

cd "$root/web"
echo "install-web-deps: npm ci (Node.js $(node -p 'process.versions.node'), $(command -v node))"
npm ci --no-audit --no-fund
