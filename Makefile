# `make demo` and `make test` are the whole set-up on a fresh clone: each creates
# .venv and installs shadowdiff into it when missing or when pyproject.toml changed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

DEMO_ARGS ?= --duration 20

demo: $(STAMP)
	$(BIN)/shadowdiff demo $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Side-by-side throughput: direct, shadowdiff, nginx (benchmarks/README.md); e.g. BENCH_ARGS=--quick
bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
