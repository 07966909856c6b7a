#!/usr/bin/env bash
# apt_install.sh COMMAND PACKAGE WHY: install Debian's PACKAGE with apt unless COMMAND is on PATH
# already (as root, or with passwordless sudo); idempotent. Used by `make test` for the
# system programs the tests drive.
set -euo pipefail
COMMAND=$1 PACKAGE=$2 WHY=$3
if command -v "$COMMAND" >/dev/null 2>&1; then
    exit 0
fi
if [[ $(id -u) -eq 0 ]]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO=(sudo -n)
else
    echo "$COMMAND is missing and this user cannot install it: run 'sudo apt-get install -y $PACKAGE'" >&2
    exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "$COMMAND is missing and there is no apt-get: install $PACKAGE and put $COMMAND on PATH" >&2
    exit 1
fi
echo "==> installing $PACKAGE (apt) $WHY"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq "$PACKAGE" >/dev/null
command -v "$COMMAND"
