# The README's two commands are `make demo` and `make test`; CI runs `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install system-deps demo up lint test check fuzz lock clean

$(STAMP): pyproject.toml client/pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ./client -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/toolbridge up --demo

up: install
	$(BIN)/toolbridge up

# ruff and mypy (strict, as configured in pyproject.toml) before any test: CI runs `make test`, so both gate it.
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

# The suite runs real chromium, bubblewrap and PostgreSQL from Debian: installed here when missing.
system-deps:
	bash scripts/test-system-deps.sh

test: lint system-deps
	$(BIN)/python -m pytest

check: lint
	$(BIN)/python -m pytest tests/unit -q

# Schemathesis against the served OpenAPI documents, FUZZ_EXAMPLES cases per operation, randomized (the seed
# is printed with any failure; TOOLBRIDGE_FUZZ_SEED=<seed> make fuzz replays it). `make test` runs 30, fixed.
FUZZ_EXAMPLES ?= 500
fuzz: install
	TOOLBRIDGE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/integration/test_fuzz.py -p no:cacheprovider

lock: install
	{ echo "# Exact versions CI and the README commands install (pip install -c constraints.txt). Regenerate: make lock"; \
	  $(BIN)/pip freeze --exclude-editable; } > constraints.txt.new && mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .toolbridge

# The UI's screenshots in docs/ui/ (catalog, tool page, operations page): the browser test that takes them on
# every run (into a temp folder) writes them there, against real servers with the demo models. Needs Debian's
# chromium (`apt-get install -y chromium`; .ci/run installs it).
.PHONY: screenshots
screenshots: install
	TOOLBRIDGE_UI_SCREENSHOTS=docs/ui $(BIN)/python -m pytest tests/integration/test_ui.py -k 'screenshots or shadow' -p no:cacheprovider -q
