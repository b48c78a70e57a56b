# One command to set up and start the course, one to set up and test it.
#   make lab     JupyterLab on notebooks/ (creates .venv on first use)
#   make test    unit tests + strict nbval over every notebook
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Jupyter refuses to start as root unless told; containers often run as root.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
LAB_ARGS ?=
LAB_DIR ?= notebooks

.PHONY: install lab test format notebooks student slides clean

install: $(STAMP)

# Reinstalls only when pyproject.toml changed (or the venv is new).
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(LAB_DIR) $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest --nbval

# Fix what ruff can fix and format the code (the tests only check: tests/test_lint.py).
format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-execute every chapter in place, top to bottom in a fresh kernel, without timing metadata.
# CoalesceStreams keeps only what a progress bar finally shows (nbval compares just that).
notebooks: $(STAMP)
	cd notebooks && $(abspath $(BIN))/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.record_timing=False --ExecutePreprocessor.timeout=600 \
	    --NotebookExporter.preprocessors=nbconvert.preprocessors.CoalesceStreamsPreprocessor \
	    $(or $(NOTEBOOKS),*.ipynb)

# Learner copies: exercise answers replaced by stubs, into build/student/.
student: $(STAMP)
	$(BIN)/mnist-course student notebooks/*.ipynb --out build/student

# Static reveal.js decks, one per chapter, into build/slides/. They work offline: reveal.js,
# require.js, jQuery and MathJax are fetched once from the npm registry into build/slides/assets/.
SLIDES ?= build/slides
SLIDE_NOTEBOOKS ?= notebooks/*.ipynb

slides: $(STAMP)
	$(BIN)/mnist-course slides $(SLIDE_NOTEBOOKS) --out $(SLIDES)

clean:
	rm -rf build .pytest_cache .ruff_cache
