#!/usr/bin/env bash
# Create .venv-<consumer>: Python 3.10 with one outside NIR consumer at pinned
# versions, the oracle our NIR files are run in (tools/nir_oracle.py, tests
# marked `sinabs`, benchmarks/nir_consumers.py). These consumers cannot share
# .venv: sinabs 3.1.3 and rockpool 3.1.0 pin nir<=1.0.4 (we write nir 1.0.8),
# spyx needs jax. They hold no dpap-neuro.
#
#   bash tools/ensure_consumer_venv.sh sinabs|rockpool|spyx
set -euo pipefail
cd "$(dirname "$0")/.."
CONSUMER=${1:?usage: ensure_consumer_venv.sh sinabs|rockpool|spyx}
case "$CONSUMER" in
    # What `pip install sinabs==3.1.3` resolves to (torch capped at the project's 2.14.1).
    sinabs) PINS="sinabs==3.1.3 nir==1.0.4 nirtorch==2.0.2 torch==2.14.1 numpy==2.2.6"
            CHECK="import sinabs, nir; sinabs.from_nir" ;;
    rockpool) PINS="rockpool==3.1.0 nir==1.0.4 nirtorch==2.0.2 torch==2.14.1 numpy==1.26.4 scipy==1.15.3"
              CHECK="from rockpool.nn.modules import from_nir" ;;
    spyx) PINS="spyx==0.1.20 nir==1.0.8 jax==0.6.2 jaxlib==0.6.2 dm-haiku==0.0.17 optax==0.2.8 numpy==2.2.6"
          CHECK="import spyx.nir" ;;
    *) echo "ensure_consumer_venv: unknown consumer '$CONSUMER' (sinabs, rockpool or spyx)" >&2; exit 2 ;;
esac
VENV=".venv-$CONSUMER"
STAMP="$VENV/.consumer-installed"
source tools/python310.sh

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$PINS" ] && [ -x "$VENV/bin/python" ]; then
    exit 0
fi
rm -rf "$VENV"
PY310=$(find_python310) || { echo "ensure_consumer_venv: Python 3.10 not found" >&2; exit 1; }
echo "ensure_consumer_venv: creating $VENV with $PY310 and $PINS (first time: a few minutes)" >&2
"$PY310" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
"$VENV/bin/python" -m pip install --quiet $PINS
"$VENV/bin/python" -c "$CHECK" >/dev/null 2>&1 \
    || { echo "ensure_consumer_venv: $PINS installed but '$CHECK' fails" >&2; exit 1; }
echo "$PINS" > "$STAMP"
