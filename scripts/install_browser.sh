#!/usr/bin/env bash
# The browser the end-to-end tests drive through Playwright: Debian's chromium from apt.
# (`playwright install` would download a browser from a CDN that these machines cannot reach.)
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "chromium is missing and this user cannot install it: run 'sudo apt-get install -y chromium'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium is missing and there is no apt-get: install chromium and put it on PATH" >&2
    exit 1
fi
echo "==> installing chromium (apt) for the browser tests"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq chromium >/dev/null
command -v chromium
