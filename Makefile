# The two commands of the README: `make report` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
STORE ?= data/store
REPORTS ?= reports
APT_PACKAGES := $(shell grep -v '^\#' requirements-apt.txt 2>/dev/null)

.PHONY: report test install apt lint docs clean bench torture

$(BIN)/python:
	@$(PY) -m venv $(VENV) 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv && $(PY) -m venv $(VENV); }

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $@

install: $(STAMP)

# Debian packages for the tests that run real servers and tools; only the missing ones are installed.
apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "apt-get install:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; fi

report: install
	rm -rf $(STORE)
	$(BIN)/capacity ingest data/samples/jmeter-ramp20 --run sample-ramp20 --store $(STORE) --tag platform=mooc --tag tool=jmeter
	$(BIN)/capacity stats sample-ramp20 --store $(STORE)

lint: install
	$(BIN)/ruff check .

test: install apt
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(STORE) $(REPORTS) .pytest_cache .ruff_cache
