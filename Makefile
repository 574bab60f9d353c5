# The two commands of the README:
#   make demo   - install, start Kafka + Postgres, run a simulated bank through a worker, show alerts
#   make test   - install, start what is not running, run unit + integration tests, stop what it started
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install up down demo test unit lint typecheck evaluate bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,report]'
	@touch $@

up: install
	bash infra/up.sh

down:
	bash infra/down.sh

demo: install up
	$(BIN)/simbank demo

test: install
	bash infra/with-services.sh $(BIN)/python -m pytest -q

unit: install
	$(BIN)/python -m pytest -q tests/unit

lint: install
	$(BIN)/ruff check pipeline simbank tests
	$(BIN)/ruff format --check pipeline simbank tests

typecheck: install
	$(BIN)/mypy

evaluate: install up
	$(BIN)/simbank evaluate

clean:
	rm -rf $(VENV) .pipeline-data reports
