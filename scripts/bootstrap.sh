#!/usr/bin/env bash
# Build (or reuse) the project's virtual environment in .venv.
# torch comes first, from the CPU wheel this kind of machine keeps on disk, so that nothing
# later pulls a multi-GB CUDA build; it is reinstalled only when pyproject.toml changes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.installed
PYTHON=${PYTHON:-python3}

if [[ -f $STAMP && $STAMP -nt pyproject.toml ]]; then
    exit 0
fi
echo "==> building $VENV (takes a few minutes on a fresh machine)"
[[ -x $VENV/bin/python ]] || "$PYTHON" -m venv "$VENV"
# This machine's pip config names local wheel folders that may be absent: hide only that warning.
pip_install() { "$VENV/bin/python" -m pip install --quiet "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip_install --upgrade pip
pip_install -e '.[dev]'
"$VENV/bin/python" -c "import dagster, duckdb, polars, synpref" # fail here, not later, if the install broke
touch "$STAMP"
echo "==> $VENV ready"
