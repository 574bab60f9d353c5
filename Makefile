# The two commands of the README:
#   make demo   - install, start Kafka + Postgres, run a simulated bank through a worker, show alerts
#   make test   - install, ruff and mypy (strict), start what is not running, run unit,
#                 integration and chaos tests (the console's in Debian's chromium,
#                 installed by infra/chromium.sh), stop what it started
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

# constraints.txt pins every package (direct and transitive) for reproducible
# installs; `make constraints` regenerates it from pyproject.toml.
UV_VERSION := 0.13.8

.PHONY: install up down demo test unit lint typecheck evaluate bench clean constraints docs screenshots

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test,report]'
	@touch $@

constraints:
	@test -x .tools/bin/uv || { $(PYTHON) -m venv .tools && .tools/bin/pip install -q uv==$(UV_VERSION); }
	.tools/bin/uv pip compile pyproject.toml --extra test --extra report \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 \
		--custom-compile-command 'make constraints' --output-file constraints.txt

# The settings tables of docs/operations.md and README.md, from pipeline/settings.py.
docs: install
	$(BIN)/python -m pipeline.settings_doc --write docs/operations.md --write README.md

up: install
	bash infra/up.sh

down:
	bash infra/down.sh

demo: install up
	$(BIN)/simbank demo

test: install lint typecheck
	bash infra/chromium.sh
	bash infra/with-services.sh $(BIN)/python -m pytest -q

unit: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check pipeline simbank tests bench
	$(BIN)/ruff format --check pipeline simbank tests bench

typecheck: install
	$(BIN)/mypy

screenshots: install up
	bash infra/chromium.sh
	$(BIN)/python docs/console/screenshots.py

evaluate: install up
	$(BIN)/simbank evaluate

clean:
	rm -rf $(VENV) .tools .pipeline-data reports
