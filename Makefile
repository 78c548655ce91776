# The two commands of the README's quick start: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv netx-env bench clean
venv:
	@bash tools/ensure_venv.sh

# lava-dl in its own venv (.venv-netx): the oracle for our netx files (tests marked netx).
netx-env:
	@bash tools/ensure_netx_venv.sh

demo: venv
	rm -rf runs/demo
	$(VENV)/bin/dpap run --out runs/demo

test: venv netx-env
	$(PY) -m pytest

bench: venv
	$(PY) benchmarks/overhead.py

clean:
	rm -rf runs/ .pytest_cache
