# The two set-up commands (README): `make quickstart` and `make test`.
# Both create .venv, install the CPU torch wheel pinned to 2.13.0 (never a CUDA build),
# then this package; nothing outside .venv is touched except two Debian packages (`apt-get`,
# as root): Fashion-MNIST (`dataset-fashion-mnist`, the real task's data; `make test` fails
# without it) and Chromium (the report's browser test, skipped politely where not root).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?= -q

.PHONY: setup quickstart test browser data benchmark clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[test]'
	touch $@

quickstart: setup
	$(VENV)/bin/autoprune run studies/quickstart.yaml

browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || echo "chromium not installed: the report's browser test will be skipped"

FASHION := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
data:
	@[ -f $(FASHION) ] || [ -n "$$AUTOPRUNE_FASHION_MNIST" ] || { [ "$$(id -u)" = 0 ] && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null; } || { echo "Fashion-MNIST missing: apt-get install dataset-fashion-mnist (or set AUTOPRUNE_FASHION_MNIST to a directory with the four IDX files)"; exit 1; }

test: setup data browser
	$(PY) -m pytest $(PYTEST_ARGS)

benchmark: setup
	$(PY) benchmarks/quickstart.py

clean:
	rm -rf $(VENV) runs .pytest_cache
