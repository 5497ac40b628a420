#!/usr/bin/env bash
# Install desed_task and everything it needs on a fresh Debian/Ubuntu machine with Python and pip.
#   bash scripts/install.sh            # the package + the demo (scaper) requirements
#   bash scripts/install.sh test       # + test requirements (pytest, librosa, ruff, tensorflow-cpu)
#   bash scripts/install.sh datagen    # + real DESED download requirements (desed, yt-dlp)
# Extras can be combined: bash scripts/install.sh test,datagen
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
extras="demo${1:+,$1}"

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
