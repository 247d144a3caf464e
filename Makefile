# The two commands of the README: `make demo` and `make test`. Both build .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.clicktune-installed
TORCH_PIN := torch==2.13.0
# Server-mode tests (feedback store, job store, cross-process lock) use this PostgreSQL when it answers.
export CLICKTUNE_TEST_PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test lint install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# torch first and pinned: a bare `torch` requirement on an empty venv pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e '.[dev,models]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check plugin adapters scheduler tests examples benchmarks

clean:
	rm -rf $(VENV) .clicktune build dist *.egg-info
