# Set-up is two commands on a fresh machine with Python >= 3.11:
#   make demo   install, check this machine, bring the platform up and take the tour
#   (make up    the platform up only)
#   make test   install with test tools, run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: up demo test install clean system-deps

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

up: $(STAMP)
	$(BIN)/aether-sandbox doctor
	$(BIN)/aether-sandbox up

demo: $(STAMP)
	$(BIN)/aether-sandbox doctor
	$(BIN)/aether-sandbox demo

# Integration tests mostly wait on servers starting: 4 workers on 2 cores halve the wall time.
JOBS ?= 4

# Debian packages some tests use (debootstrap, prometheus, alertmanager, chromium):
# installed when run as root, else those tests skip with the reason.
system-deps:
	@bash scripts/system-deps.sh

# loadgroup keeps tests sharing one expensive fixture (docker images, a whole
# platform) on one worker.
test: $(STAMP) system-deps
	$(BIN)/pytest -n $(JOBS) --dist loadgroup $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
