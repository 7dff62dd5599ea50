#!/usr/bin/env bash
# Installs a CPU-only Python environment that can run a real ComfyUI headless with this pack loaded,
# for the end-to-end tests in tests/e2e (see comfyui_conventions.md §7.1 for why each step is needed).
#
# Usage: bash scripts/setup_comfyui.sh COMFYUI_DIR VENV_DIR
#   COMFYUI_DIR  an existing ComfyUI checkout (this script never downloads ComfyUI itself)
#   VENV_DIR     virtual environment to create or update (idempotent: re-running only re-checks)
# Env: PYTHON (interpreter used to create the venv, default python3),
#      WITH_TORCHAUDIO=0 (skip torchaudio; ComfyUI then logs IMPORT FAILED for its two audio node files).
# Then: COMFYUI_DIR=... COMFYUI_PYTHON=VENV_DIR/bin/python python -m pytest -q tests/e2e
set -euo pipefail

if [ "$#" -ne 2 ]; then
    echo "usage: $0 COMFYUI_DIR VENV_DIR" >&2
    exit 64
fi
COMFYUI_DIR="$(cd "$1" && pwd)"
VENV="$2"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
TORCH_VERSION="2.13.0"
# The only torchvision wheel that accepts torch 2.13.0; it is a CUDA build, patched below.
TORCHVISION_VERSION="0.28.0"

if [ ! -f "$COMFYUI_DIR/main.py" ] || [ ! -f "$COMFYUI_DIR/requirements.txt" ]; then
    echo "error: $COMFYUI_DIR is not a ComfyUI checkout (no main.py / requirements.txt)" >&2
    exit 64
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip install -q --disable-pip-version-check)

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# Every install gets this constraint: anything that asks for a newer torch (torchvision 0.29, spandrel)
# would otherwise silently replace the CPU torch with a multi-GB CUDA build.
echo "torch==$TORCH_VERSION" > "$WORK/constraints.txt"

# 1. CPU torch first (pip picks the local CPU wheel for an exact pin).
"${PIP[@]}" "torch==$TORCH_VERSION"

# 2. ComfyUI's requirements without the torch family; those come next, constrained.
grep -v -E '^(torch|torchvision|torchaudio|torchsde|spandrel|kornia)([<>=~! ]|$)' \
    "$COMFYUI_DIR/requirements.txt" > "$WORK/req_core.txt"
"${PIP[@]}" -r "$WORK/req_core.txt" -c "$WORK/constraints.txt"
# `requests` is imported by app/frontend_management.py but missing from requirements.txt.
"${PIP[@]}" torchsde kornia spandrel requests "torchvision==$TORCHVISION_VERSION" -c "$WORK/constraints.txt"

# 3. torchvision's _C.so needs libc10_cuda.so, so its ops are unavailable; its _meta_registrations.py
#    then registers fake kernels for ops that do not exist and `import torchvision` raises
#    "operator torchvision::nms does not exist". Guard those registrations (only this venv is touched).
"$VPY" - <<'EOF'
import pathlib, re, sysconfig
path = pathlib.Path(sysconfig.get_paths()["purelib"]) / "torchvision" / "_meta_registrations.py"
src = path.read_text()
marker = "# patched by setup_comfyui.sh"
if marker not in src:
    # register_meta() already checks _has_ops(); the bare @torch.library.register_fake(...) decorators
    # do not, so give them the same guard (a no-op decorator when the C++ ops are missing).
    new, n = re.subn(r"^@torch\.library\.register_fake\((.*)\)$",
                     r"@(torch.library.register_fake(\1) if torchvision.extension._has_ops() else (lambda fn: fn))  "
                     + marker, src, flags=re.M)
    if n == 0:
        raise SystemExit(f"torchvision patch: no register_fake decorator found in {path}")
    path.write_text(new)
EOF

# 4. torchaudio (optional for ComfyUI, on by default so its log stays clean): the wheel links CUDA;
#    without its .so files it loads as pure Python (resample, MelScale work).
if [ "${WITH_TORCHAUDIO:-1}" = "1" ]; then
    "${PIP[@]}" --no-deps "torchaudio==2.11.0" -c "$WORK/constraints.txt"
    TA_LIB="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/torchaudio/lib"
    mkdir -p "$TA_LIB/disabled_cuda_libs"
    find "$TA_LIB" -maxdepth 1 -name '*.so' -exec mv {} "$TA_LIB/disabled_cuda_libs/" \;
fi

# 5. This pack's own runtime dependencies (as the README tells users), plus onnxruntime and a
#    dependency-free insightface (see requirements.txt for why these two are not listed there).
"${PIP[@]}" -r "$REPO/requirements.txt" onnxruntime -c "$WORK/constraints.txt"
"${PIP[@]}" --no-deps "insightface>=0.7.3" -c "$WORK/constraints.txt"

# 6. Smoke checks: the torch build is still the CPU one, and everything imports.
"$VPY" - <<'EOF'
import torch
assert torch.__version__.startswith("2.13.0") and not torch.version.cuda, torch.__version__
import torchvision, torchvision.transforms, aiohttp, av, diffusers, transformers, onnxruntime, insightface  # noqa: F401
EOF
echo "ComfyUI environment ready: $VENV (ComfyUI at $COMFYUI_DIR)"
