#!/usr/bin/env bash
# Create .venv with Python 3.10 and install the project into it when the venv is
# missing, has the wrong Python, or is older than pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP="$VENV/.dpap-installed"

source tools/python310.sh

if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1; then
    echo "ensure_venv: $VENV is not Python 3.10; recreating it" >&2
    rm -rf "$VENV"
fi
if [ ! -x "$VENV/bin/python" ]; then
    PY310=$(find_python310) || { echo "ensure_venv: Python 3.10 not found (lava-nc 0.10 needs exactly 3.10)" >&2; exit 1; }
    echo "ensure_venv: creating $VENV with $PY310" >&2
    "$PY310" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    echo "ensure_venv: installing dpap-neuro[dev] into $VENV (first time: a few minutes)" >&2
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e ".[dev]"
    touch "$STAMP"
fi
