# The two commands of the README's quick start: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test venv bench clean
venv:
	@bash tools/ensure_venv.sh

demo: venv
	rm -rf runs/demo
	$(VENV)/bin/dpap run --out runs/demo

test: venv
	$(PY) -m pytest

bench: venv
	$(PY) benchmarks/overhead.py

clean:
	rm -rf runs/ .pytest_cache
