# The two commands of the README: `make report` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
STORE ?= data/store
REPORTS ?= reports
APT_PACKAGES := $(shell grep -v '^\#' requirements-apt.txt 2>/dev/null)

.PHONY: report test install apt locales lint docs clean bench torture print-tags

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

# Each folder of data/samples is one run named after the folder; its tags are set here.
TAGS_jmeter-ramp20 := --tag platform=mooc --tag tool=jmeter --tag profile=ramp
TAGS_jmeter-steps := --tag platform=mooc --tag tool=jmeter --tag profile=steps

report: install
	rm -rf $(STORE)
	@for dir in data/samples/*/; do run=$$(basename $$dir); \
	  tags="$$(make -s --no-print-directory print-tags RUN=$$run)"; \
	  $(BIN)/capacity ingest $$dir --run $$run --store $(STORE) $$tags || exit 1; done
	@for dir in data/samples/*/; do $(BIN)/capacity stats $$(basename $$dir) --store $(STORE) || exit 1; done
	@echo "Store: $(STORE) (open it with capacity.open_store('$(STORE)'))"

print-tags:
	@echo $(TAGS_$(RUN))

lint: install
	$(BIN)/ruff check .

# Locales the sysstat and top tests render real output in (comma decimals, 12-hour times).
LOCALES := de_DE.UTF-8 en_US.UTF-8 fr_FR.UTF-8
locales: apt
	@for l in $(LOCALES); do locale -a | grep -qix "$$(echo $$l | sed 's/UTF-8/utf8/')" || missing="$$missing $$l"; done; \
	if [ -n "$$missing" ]; then for l in $$missing; do sed -i "s/^# *$$l UTF-8/$$l UTF-8/" /etc/locale.gen; \
	  grep -q "^$$l UTF-8" /etc/locale.gen || echo "$$l UTF-8" >> /etc/locale.gen; done; locale-gen >/dev/null; fi

test: install apt locales
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) $(STORE) $(REPORTS) .pytest_cache .ruff_cache
