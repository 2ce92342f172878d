# Set-up and checks. `make lab` and `make test` are the two commands a user needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SAMPLES_STAMP := datasets/.generated-stamp
LAB_PORT ?= 8888

.PHONY: setup samples lab test lint lock clean browser

setup: $(STAMP)

# torch comes first and exactly pinned: these wheels lie on this machine's disk (others download GBs).
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[ml,lab,dev]"
	touch $(STAMP)

samples: $(SAMPLES_STAMP)

$(SAMPLES_STAMP): $(STAMP) $(wildcard astrocyte_lab/samples/*.py)
	$(BIN)/astrocyte-lab samples generate --dest datasets
	touch $(SAMPLES_STAMP)

lab: samples
	$(BIN)/jupyter lab --allow-root --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
		--ServerApp.root_dir=notebooks

# The browser tests drive the system Chromium (Debian package) with Playwright; never `playwright install`.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

test: samples browser
	$(BIN)/ruff check .
	ASTROCYTE_REQUIRE_BROWSER=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# Refresh the pinned versions after changing dependencies in pyproject.toml (benchmark-only data left out).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -e '^astrocyte-lab' -e '^elpv-dataset' > requirements.lock

clean:
	rm -rf $(VENV) datasets/*/ $(SAMPLES_STAMP) .pytest_cache .ruff_cache
