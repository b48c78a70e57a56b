# One command to set up and start the course, one to set up and test it.
#   make lab     JupyterLab on notebooks/ (creates .venv with the "lab" extra on first use)
#   make test    unit tests + strict nbval over every notebook (adds the "dev" extra)
# Both install the exact versions the course was tested with (constraints.txt).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The Python versions the course supports (pyproject's requires-python; tests/test_project.py
# checks that they agree).
SUPPORTED_PYTHONS := 3.11 3.12 3.13
CONSTRAINTS := constraints.txt
VENV_OK := $(VENV)/.venv-complete
# What is installed: the lab extra (.installed) and the dev extra on top (.installed-dev).
LAB_STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# Jupyter refuses to start as root unless told; containers often run as root.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
LAB_ARGS ?=
LAB_DIR ?= notebooks
UPGRADE_PIP ?= 1

.PHONY: install install-dev check-python lab test format notebooks student slides lock clean

install: $(LAB_STAMP)
install-dev: $(DEV_STAMP)

# Stop at once, with the fix, on a Python the course does not support (e.g. macOS's 3.9),
# before anything is written.
GOAL := $(or $(MAKECMDGOALS),install)
CHECK_PYTHON = v=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) \
	    || { echo "make: cannot run '$(PYTHON)'. Install Python $(firstword $(SUPPORTED_PYTHONS))" \
	              "to $(lastword $(SUPPORTED_PYTHONS)), then run: make $(GOAL) PYTHON=python3.11" >&2; \
	         exit 1; }; \
	case " $(SUPPORTED_PYTHONS) " in *" $$v "*) ;; *) \
	    echo "make: '$(PYTHON)' is Python $$v, but the course needs Python" \
	         "$(firstword $(SUPPORTED_PYTHONS)) to $(lastword $(SUPPORTED_PYTHONS))." >&2; \
	    echo "      Install one (e.g. from python.org, or 'brew install python@3.11'), then run:" >&2; \
	    echo "      make $(GOAL) PYTHON=python3.11" >&2; \
	    echo "      Nothing was installed." >&2; \
	    exit 1;; esac

check-python:
	@$(CHECK_PYTHON)

# The virtual environment, made complete or not at all: a .venv left half-made by an
# interrupted run (no marker, no working pip, or an unsupported Python) is rebuilt.
$(VENV_OK):
	@$(CHECK_PYTHON)
	@if [ -e $(VENV) ]; then \
	    if $(BIN)/python -c 'import sys, pip; v = "%d.%d" % sys.version_info[:2]; \
	        sys.exit(v not in "$(SUPPORTED_PYTHONS)".split())' 2>/dev/null; then \
	        echo "$(VENV): found a working environment, keeping it"; \
	    else \
	        echo "$(VENV) is half-made or uses an unsupported Python: rebuilding it"; \
	        rm -rf $(VENV); \
	    fi; \
	fi
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	@[ "$(UPGRADE_PIP)" = 0 ] || $(BIN)/python -m pip install --upgrade --quiet pip
	@touch $@

# Reinstall when pyproject.toml or constraints.txt changed (or the venv is new).
$(LAB_STAMP): $(VENV_OK) pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[lab]"
	@touch $@

$(DEV_STAMP): $(VENV_OK) pyproject.toml $(CONSTRAINTS)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	@touch $@ $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(LAB_DIR) $(ROOT_FLAG) $(LAB_ARGS)

test: $(DEV_STAMP)
	$(BIN)/python -m pytest --nbval

# Fix what ruff can fix and format the code (the tests only check: tests/test_lint.py).
format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-execute every chapter in place, top to bottom in a fresh kernel, without timing metadata.
# CoalesceStreams keeps only what a progress bar finally shows (nbval compares just that).
# No widget state is stored: the demos' stored output is then their one-line description, which
# the offline decks can show (they have no widget renderer).
notebooks: $(LAB_STAMP)
	cd notebooks && $(abspath $(BIN))/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.timeout=600 \
	    --ExecutePreprocessor.store_widget_state=False \
	    --NotebookExporter.preprocessors=nbconvert.preprocessors.CoalesceStreamsPreprocessor \
	    $(or $(NOTEBOOKS),*.ipynb)

# Learner copies: exercise answers replaced by stubs, into build/student/.
student: $(LAB_STAMP)
	$(BIN)/mnist-course student notebooks/*.ipynb --out build/student

# Static reveal.js decks, one per chapter, into build/slides/. They work offline: reveal.js,
# require.js, jQuery and MathJax are fetched once from the npm registry into build/slides/assets/.
SLIDES ?= build/slides
SLIDE_NOTEBOOKS ?= notebooks/*.ipynb

slides: $(LAB_STAMP)
	$(BIN)/mnist-course slides $(SLIDE_NOTEBOOKS) --out $(SLIDES)

# Re-pin constraints.txt: resolve the dev set in a fresh venv (keeping the current pins; delete
# or edit a line to move that package), and write what was installed. Then run `make test`.
LOCK_VENV := build/lock-venv
lock: check-python
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	{ sed -n '/^#/p' $(CONSTRAINTS); \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable | grep -iv '^mnist.course'; } \
	    > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf $(LOCK_VENV)

clean:
	rm -rf build .pytest_cache .ruff_cache
