#!/usr/bin/env bash
# Creates .venv with a CPU torch and everything the pack and its tests need.
# Usage: bash scripts/setup.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
PY="${PYTHON:-python3}"
"$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# torch first, pinned: an unpinned torch (or one pulled in by another package) is a multi-GB CUDA build.
$PIP install -q torch==2.13.0
CONSTRAINTS="$(mktemp)"
echo "torch==2.13.0" > "$CONSTRAINTS"
$PIP install -q -r requirements.txt -r requirements-test.txt -c "$CONSTRAINTS"
# insightface without its dependencies: its own dependency list would pull the onnxruntime CPU build
# (see README); what it needs besides is in requirements.txt.
$PIP install -q --no-deps "insightface>=0.7.3" -c "$CONSTRAINTS"
rm -f "$CONSTRAINTS"
"$VENV/bin/python" -c "import torch, diffusers, transformers, onnxruntime, insightface, av; print('environment ready:', '$VENV', 'torch', torch.__version__)"
