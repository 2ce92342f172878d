# Set-up and checks. `make lab` and `make test` are the two commands a user needs.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
SAMPLES_STAMP := datasets/.generated-stamp
LABEXT_STAMP := $(VENV)/.labextension-stamp
LABEXT_LINK := $(VENV)/share/jupyter/labextensions/astrocyte-lab-labextension
LABEXT_SOURCES := $(addprefix labextension/,package.json yarn.lock tsconfig.json .yarnrc.yml) \
	$(wildcard labextension/src/*.ts labextension/style/*)
LAB_PORT ?= 8888

.PHONY: setup samples lab test lint lock clean browser

setup: $(STAMP) $(LABEXT_STAMP)

# torch comes first and exactly pinned: these wheels lie on this machine's disk (others download GBs).
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[ml,lab,dev]"
	touch $(STAMP)

# The JupyterLab extension (labextension/ -> astrocyte_lab/labextension): jlpm fetches the npm packages of the
# committed yarn.lock on the first run, @jupyter/builder builds offline; the build is linked into the venv and
# the server extension enabled there. Skipped with a warning where Node.js is missing (notebooks still work).
$(LABEXT_STAMP): $(STAMP) $(LABEXT_SOURCES) jupyter-config/jupyter_server_config.d/astrocyte_lab.json
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d $(VENV)/share/jupyter/labextensions
	cp jupyter-config/jupyter_server_config.d/astrocyte_lab.json $(VENV)/etc/jupyter/jupyter_server_config.d/
	@if ! command -v node >/dev/null; then echo "WARNING: Node.js >= 20 not found: JupyterLab extension not built"; \
	else cd labextension && export PATH="$(CURDIR)/$(BIN):$$PATH" && jlpm install && jlpm build \
	&& cd .. && rm -rf $(LABEXT_LINK) && ln -s "$(CURDIR)/astrocyte_lab/labextension" $(LABEXT_LINK) \
	&& touch $@; fi

samples: $(SAMPLES_STAMP)

$(SAMPLES_STAMP): $(STAMP) $(wildcard astrocyte_lab/samples/*.py)
	$(BIN)/astrocyte-lab samples generate --dest datasets
	touch $(SAMPLES_STAMP)

lab: setup samples
	$(BIN)/jupyter lab --allow-root --no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port=$(LAB_PORT) \
		--ServerApp.root_dir=notebooks

# The browser tests drive the system Chromium (Debian package) with Playwright; never `playwright install`.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

test: setup samples browser
	$(BIN)/ruff check .
	ASTROCYTE_REQUIRE_BROWSER=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# Refresh the pinned versions after changing dependencies in pyproject.toml (benchmark-only data left out).
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -e '^astrocyte-lab' -e '^elpv-dataset' > requirements.lock.new
	@if grep -n ' @ file:' requirements.lock.new; then rm requirements.lock.new; \
		echo "a pin to a local file (above): install that package from the registry; requirements.lock unchanged"; \
		exit 1; fi
	mv requirements.lock.new requirements.lock

clean:
	rm -rf $(VENV) datasets/*/ $(SAMPLES_STAMP) .pytest_cache .ruff_cache
