#!/usr/bin/env bash
# Create .venv-netx: Python 3.10 with lava-dl 0.6.0, the real netx reader our
# netx export is tested against (tests marked `netx`, tools/netx_oracle.py).
# It cannot share .venv: lava-dl pins torch 2.3. It holds no dpap-neuro.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-netx
STAMP="$VENV/.lava-dl-installed"
LAVA_DL=lava-dl==0.6.0
source tools/python310.sh

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$LAVA_DL" ] && [ -x "$VENV/bin/python" ]; then
    exit 0
fi
rm -rf "$VENV"
PY310=$(find_python310) || { echo "ensure_netx_venv: Python 3.10 not found (lava-dl 0.6 needs exactly 3.10)" >&2; exit 1; }
echo "ensure_netx_venv: creating $VENV with $PY310 and $LAVA_DL (first time: a few minutes)" >&2
"$PY310" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "$LAVA_DL"
"$VENV/bin/python" -c 'from lava.lib.dl import netx' >/dev/null 2>&1 \
    || { echo "ensure_netx_venv: $LAVA_DL installed but 'from lava.lib.dl import netx' fails" >&2; exit 1; }
echo "$LAVA_DL" > "$STAMP"
