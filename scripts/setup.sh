#!/usr/bin/env bash
# Set up denselab on a fresh Debian/Ubuntu machine: system packages, a venv, the package.
#   bash scripts/setup.sh            # then: .venv/bin/denselab tour
# System packages (skipped when not root and no sudo): Fashion-MNIST for offline data, the
# Cortex-M cross compiler for flash sizes, Chromium for the explorer's browser test.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES="dataset-fashion-mnist gcc-arm-none-eabi libnewlib-arm-none-eabi chromium valgrind"
if command -v apt-get >/dev/null; then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="$(command -v sudo || true)"; fi
  if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
    missing=""
    for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
    if [ -n "$missing" ]; then
      echo "setup: apt-get install$missing"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null \
        || echo "setup: some system packages did not install; the tests that need them skip"
    fi
  else
    echo "setup: not root: skipping system packages ($APT_PACKAGES)"
  fi
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[deploy,search,test]"
echo "setup: done. Try: .venv/bin/denselab tour"
