#!/usr/bin/env bash
# Installs what the web app's browser tests need: Debian's Chromium (/usr/bin/chromium),
# driven by playwright-core (never `npx playwright install`: it downloads browsers from a
# CDN). Idempotent; uses apt-get as root or through passwordless sudo. IRONHAND_CHROMIUM
# names another Chromium/Chrome binary and skips the install.
set -euo pipefail

say() { echo "install-browser-deps: $*"; }
fail() {
  echo "install-browser-deps: $*" >&2
  exit 1
}

if [ -n "${IRONHAND_CHROMIUM:-}" ]; then
  [ -x "$IRONHAND_CHROMIUM" ] || fail "IRONHAND_CHROMIUM=$IRONHAND_CHROMIUM is not an executable"
  say "using $IRONHAND_CHROMIUM"
  exit 0
fi
# Chromium, and fonts for the Arabic and Chinese pages (without them the page stories'
# screenshots show empty boxes)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fonts=$(fc-list 2>/dev/null || true)
grep -qi 'Noto Sans Arabic' <<<"$fonts" || missing+=(fonts-noto-core)
grep -qi 'Noto Sans CJK' <<<"$fonts" || missing+=(fonts-noto-cjk)
if [ ${#missing[@]} -eq 0 ]; then
  say "$(chromium --version 2>/dev/null | head -n1) and its fonts present, nothing to install"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 ||
  fail "missing ${missing[*]} and no apt-get: install Chromium (and Noto fonts) and set IRONHAND_CHROMIUM to its path"
if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo -n)
else
  fail "missing ${missing[*]}: run as root (or with passwordless sudo), or: sudo apt-get install -y ${missing[*]}"
fi
say "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
if ! "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
  say "apt-get install failed; updating the package lists and retrying"
  "${sudo[@]}" apt-get update -qq || fail "apt-get update failed"
  "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" ||
    fail "could not install ${missing[*]} with apt-get"
fi
command -v chromium >/dev/null 2>&1 || fail "chromium was installed but is not on PATH"
say "installed $(chromium --version 2>/dev/null | head -n1)"
