#!/usr/bin/env bash
# Install desed_task and everything it needs on a fresh Debian/Ubuntu machine with Python and pip,
# into the Python of $PYTHON (default: the first `python` on the PATH, e.g. an activated virtual
# environment: python3 -m venv .venv && . .venv/bin/activate).
#   bash scripts/install.sh              # the package + the demo (scaper) requirements
#   bash scripts/install.sh test         # + test requirements (pytest, librosa, ruff, tensorflow-cpu, onnx)
#   bash scripts/install.sh export       # + ONNX export and ONNX Runtime inference (onnx, onnxruntime)
#   bash scripts/install.sh separation   # + TensorFlow, for the SSEP + SED separation model
#   bash scripts/install.sh datagen      # + real DESED download requirements (desed, yt-dlp)
#   PYTHON=/path/to/python bash scripts/install.sh   # another interpreter
# Extras can be combined: bash scripts/install.sh test,datagen
# A distribution's own Python (Debian 12, Ubuntu 24.04: PEP 668 "externally managed") is refused
# with one line saying how to make a virtual environment (pip would refuse it anyway).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
extras="demo${1:+,$1}"
venv_hint="create and activate a virtual environment first: python3 -m venv .venv && . .venv/bin/activate && bash scripts/install.sh${1:+ $1} (Debian/Ubuntu: sudo apt-get install python3-venv if venv is missing), or name an interpreter with PYTHON=/path/to/python"

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "error: no '$PYTHON' command on the PATH; $venv_hint" >&2
  exit 2
fi
# pip's PEP 668 rule: an EXTERNALLY-MANAGED file beside the standard library, outside a venv
if [ -z "${PIP_BREAK_SYSTEM_PACKAGES:-}" ] && "$PYTHON" - <<'PY'
import os, sys, sysconfig
managed = os.path.isfile(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)
PY
then
  echo "error: $("$PYTHON" -c 'import sys; print(sys.executable)') is the distribution's Python (externally managed, PEP 668): pip will not install into it; $venv_hint" >&2
  exit 2
fi

# scaper needs soxbindings, which compiles against libsox (Debian: sox, libsox-dev)
if ! dpkg -s libsox-dev >/dev/null 2>&1; then
  echo "installing sox and libsox-dev (needed by scaper's soxbindings)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq sox libsox-dev >/dev/null
fi

# torch first, pinned: an unpinned torch pulled in by a dependency may fetch a multi-GB build
if ! "$PYTHON" -c "import torch" >/dev/null 2>&1; then
  "$PYTHON" -m pip install -q "torch==2.13.0"
fi
"$PYTHON" -m pip install -q -e ".[${extras}]"
