# The two commands of the README's quick start: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-all venv netx-env sinabs-env rockpool-env spyx-env bench clean nmnist-standin
venv:
	@bash tools/ensure_venv.sh

# lava-dl in its own venv (.venv-netx): the oracle for our netx files (tests marked netx).
netx-env:
	@bash tools/ensure_netx_venv.sh

# sinabs in its own venv (.venv-sinabs: it pins nir<=1.0.4): the oracle for our NIR files (tests marked sinabs).
# rockpool and spyx likewise, for benchmarks/nir_consumers.py only (their agreement is measured, not tested).
sinabs-env:
	@bash tools/ensure_consumer_venv.sh sinabs
rockpool-env:
	@bash tools/ensure_consumer_venv.sh rockpool
spyx-env:
	@bash tools/ensure_consumer_venv.sh spyx

# ARGS: more options for the command a target runs (tests/test_guide_commands.py: `make demo ARGS='--epochs 1 ...'`).
ARGS ?=
demo: venv
	rm -rf runs/demo
	$(VENV)/bin/dpap run --out runs/demo $(ARGS)

test: venv netx-env sinabs-env
	$(PY) -m pytest

# The quick suite, then the slow one (`-m slow`: every benchmark script on tiny settings, the guide's long
# commands); .ci/run runs this.
test-all: test
	$(PY) -m pytest -m slow

# The N-MNIST stand-in (scikit-learn digits as saccade events, in N-MNIST's files; docs/datasets.md):
# `make nmnist-standin [NMNIST_STANDIN_DIR=DIR] [AUGMENT=N]`, then `dpap run --dataset nmnist --data-dir DIR`.
NMNIST_STANDIN_DIR ?= data/nmnist-standin
AUGMENT ?= 0
nmnist-standin: venv
	$(PY) -m dpap_neuro.data.nmnist_standin $(NMNIST_STANDIN_DIR) --augment $(AUGMENT) $(ARGS)

bench: venv
	$(PY) benchmarks/overhead.py

clean:
	rm -rf runs/ .pytest_cache
