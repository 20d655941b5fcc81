# Set-up is two commands on a fresh machine with Python >= 3.11:
#   make up     install, check this machine, bring the platform up
#   make test   install with test tools, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: up test install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

up: $(STAMP)
	$(BIN)/aether-sandbox doctor
	$(BIN)/aether-sandbox up

# Integration tests mostly wait on servers starting: 4 workers on 2 cores halve the wall time.
JOBS ?= 4

test: $(STAMP)
	$(BIN)/pytest -n $(JOBS) $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
