# One command to set up and start the course, one to set up and test it.
#   make lab     JupyterLab on notebooks/ (creates .venv with the "lab" extra on first use)
#   make test    unit tests + strict nbval over every notebook (adds the "dev" extra)
#   make hub     JupyterHub for a class on this machine (README "Teaching a class"): builds
#                $(HUB_DIR) once (a venv with the "hub" extra, the proxy from npm), then runs it
#   make hub-install   only build $(HUB_DIR) (tests/test_hub.py uses it)
#   make hub-update    hand the chapters out now to each student of HUB_USERS (as at each login)
# All install the exact versions the course was tested with (constraints.txt).
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
# PyTorch's idle OpenMP threads spin briefly, then sleep (every kernel, test and command
# started from here): beside a busy program, long spinning made training tens of times
# slower (mnist_course/__init__.py, benchmarks/wait_policy.py).
export GOMP_SPINCOUNT ?= 1000
LAB_DIR ?= notebooks
UPGRADE_PIP ?= 1

.PHONY: install install-dev check-python lab test format notebooks translations messages student \
	slides book bundle lock \
	clean \
	hub hub-install hub-update

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

# TORCH=cpu: on Linux, PyPI's torch brings the CUDA libraries (about 4 GB); PyTorch's CPU
# index has the same versions without them. They are installed first, at the pinned versions,
# so the install below finds torch already there. (Macs and Windows get CPU wheels anyway.)
TORCH ?=
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
PIN = $(shell grep -E '^$(1)==' $(CONSTRAINTS))
INSTALL_TORCH = $(if $(filter cpu,$(TORCH)),$(BIN)/python -m pip install --quiet \
	--index-url $(TORCH_CPU_INDEX) "$(call PIN,torch)" "$(call PIN,torchvision)")
ifneq ($(filter-out cpu,$(TORCH)),)
$(error TORCH=$(TORCH): the only choice is TORCH=cpu (leave it out for PyPI's default torch))
endif

# Reinstall when pyproject.toml or constraints.txt changed (or the venv is new).
$(LAB_STAMP): $(VENV_OK) pyproject.toml $(CONSTRAINTS)
	$(INSTALL_TORCH)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[lab]"
	@touch $@

$(DEV_STAMP): $(VENV_OK) pyproject.toml $(CONSTRAINTS)
	$(INSTALL_TORCH)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[dev]"
	@touch $@ $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab --ServerApp.root_dir=$(LAB_DIR) $(ROOT_FLAG) $(LAB_ARGS)

# The suite runs in TEST_JOBS processes (pytest-xdist), each test file whole in one of them
# (nbval runs a chapter's cells in order, in one kernel); the slowest files start first
# (conftest.py). TEST_JOBS=0: one process.
TEST_JOBS ?= 2
test: $(DEV_STAMP)
	$(BIN)/python -m pytest --nbval $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder)

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
	$(BIN)/mnist-course translate sync $(addprefix notebooks/,$(or $(NOTEBOOKS),$(notdir $(CHAPTERS))))

# The translated chapters (notebooks/zh/, README "中文版") rebuilt from the English ones: code
# cells and outputs copied, each translation kept; then what is stale or not yet translated.
CHAPTERS := $(wildcard notebooks/0*.ipynb)
translations: $(LAB_STAMP)
	$(BIN)/mnist-course translate sync $(CHAPTERS)

# The checkers' feedback in every language (mnist_course/i18n.py): extract the English text of
# each module into locale/<module>.pot, update each language's .po, compile the .mo (Babel).
messages: $(DEV_STAMP)
	$(BIN)/python -m mnist_course.catalogs

# Learner copies: exercise answers replaced by stubs, into build/student/ (Chinese: build/student/zh/).
student: $(LAB_STAMP)
	$(BIN)/mnist-course student notebooks/*.ipynb --out build/student
	$(BIN)/mnist-course student notebooks/zh/*.ipynb --out build/student/zh

# Static reveal.js decks, one per chapter, into build/slides/. They work offline: reveal.js,
# require.js, jQuery and MathJax are fetched once from the npm registry into build/slides/assets/.
SLIDES ?= build/slides
SLIDE_NOTEBOOKS ?= notebooks/*.ipynb notebooks/zh/*.ipynb

slides: $(LAB_STAMP)
	$(BIN)/mnist-course slides $(SLIDE_NOTEBOOKS) --out $(SLIDES)

# The course as a static website in English and Chinese (README "The book"): build/book/en/ and
# build/book/zh/, the chapters with their stored outputs (Sphinx, MyST-NB, sphinx-book-theme;
# MathJax fetched once from the npm registry). BOOK_REPOSITORY (https://github.com/OWNER/NAME)
# adds Binder and Colab links to each chapter, BOOK_HUB (the class hub's address) a hub link.
BOOK ?= build/book
BOOK_REPOSITORY ?=
BOOK_HUB ?=
BOOK_BRANCH ?= main
BOOK_STAMP := $(VENV)/.installed-book

$(BOOK_STAMP): $(LAB_STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e ".[lab,book]"
	@touch $@

book: $(BOOK_STAMP)
	$(BIN)/python -m mnist_course.book --out $(BOOK) --repository "$(BOOK_REPOSITORY)" \
	    --hub "$(BOOK_HUB)" --branch "$(BOOK_BRANCH)"

# The course offline in one archive (README "The offline bundle"): $(BUNDLE)/mnist-course-
# <version>-offline.zip with the chapters in both languages, the package as a wheel, the book's
# HTML, a PDF of the book per language (Chromium), START-HERE.md and SHA256SUMS; no MNIST.
BUNDLE ?= build/bundle
bundle: $(BOOK_STAMP)
	$(BIN)/python -m mnist_course.bundle --out $(BUNDLE) --assets $(BOOK)/.assets

# A JupyterHub for a class on this machine: deploy/jupyterhub/jupyterhub_config.py reads these
# (README, "Teaching a class"). The students' servers run as their own OS users, so the hub's venv
# is made from a Python every user can run (Debian's /usr/bin/python3, not one under /root) and
# installed non-editable (the students' kernels never read this checkout). HUB_DIR must be
# reachable by every user (r-x on each parent folder); the config checks it at start.
HUB_DIR ?= build/hub
HUB_PYTHON ?= /usr/bin/python3
HUB_IP ?= 127.0.0.1
HUB_PORT ?= 8000
HUB_AUTH ?= pam
HUB_USERS ?=
HUB_ADMIN ?=
HUB_CHAPTERS ?= notebooks
HUB_ARGS ?=
HUB_CHP_VERSION := 5.3.0
HUB_VENV = $(HUB_DIR)/venv
HUB_STAMP = $(HUB_DIR)/.installed

hub-install: $(HUB_STAMP)

# The lock: every package at its tested version, for every platform, with PyPI's sha256 of each
# file (`make lock` writes it and constraints.txt from one resolution).
LOCK := requirements.lock
HUB_WHEELS = $(abspath $(HUB_DIR))/wheels
HUB_SOURCE = $(HUB_WHEELS)/source

# Rebuilt when the pins or the package change (the chapters are handed out from HUB_CHAPTERS at
# each start of a student's server, so they need no rebuild). umask 022: students must read what
# root writes. The course is installed as a wheel (non-editable) with its "hub" extra, and every
# package it pulls in must be in $(LOCK) and match its hash (--require-hashes; the wheel's own
# hash is written beside it). The wheel is built from a copy of the package, so nothing is written
# into the checkout (`make -j2 install-dev hub-install` builds both at once, as .ci/run does). The
# old wheel is uninstalled first: pip keeps an installed wheel of the same version.
HUB_PACKAGE = $(wildcard mnist_course/*.py mnist_course/results/*.csv mnist_course/locale/*/LC_MESSAGES/*.mo)
$(HUB_STAMP): pyproject.toml $(CONSTRAINTS) $(LOCK) $(HUB_PACKAGE)
	@command -v npm >/dev/null || { echo "make: the hub's proxy needs npm (e.g. apt-get install npm)" >&2; exit 1; }
	@$(HUB_PYTHON) -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2>/dev/null \
	    || { echo "make: HUB_PYTHON=$(HUB_PYTHON) is not a Python 3.11 to 3.13 that every user can run;" \
	              "set HUB_PYTHON=/usr/bin/python3 (or another system Python)" >&2; exit 1; }
	@umask 022; mkdir -p $(HUB_DIR); \
	    $(HUB_VENV)/bin/python -c 'import pip' 2>/dev/null || { rm -rf $(HUB_VENV); $(HUB_PYTHON) -m venv $(HUB_VENV); }
	umask 022; $(HUB_VENV)/bin/python -m pip install --quiet --upgrade pip
	@rm -rf $(HUB_WHEELS) && mkdir -p $(HUB_SOURCE)
	@cp -R pyproject.toml README.md mnist_course $(HUB_SOURCE)/
	umask 022; $(HUB_VENV)/bin/python -m pip wheel --quiet --no-deps --wheel-dir $(HUB_WHEELS) $(HUB_SOURCE)
	@rm -rf $(HUB_SOURCE)
	@cd $(HUB_WHEELS) && for wheel in mnist_course-*.whl; do \
	    echo "mnist-course[hub] @ file://$(HUB_WHEELS)/$$wheel --hash=sha256:$$(sha256sum $$wheel | cut -d' ' -f1)"; \
	done > requirements.txt
	@! $(HUB_VENV)/bin/python -m pip show --quiet mnist-course 2>/dev/null \
	    || $(HUB_VENV)/bin/python -m pip uninstall --quiet --yes mnist-course
	umask 022; $(HUB_VENV)/bin/python -m pip install --quiet --require-hashes -c $(LOCK) -r $(HUB_WHEELS)/requirements.txt
	umask 022; npm install --silent --no-save --prefix $(HUB_DIR) configurable-http-proxy@$(HUB_CHP_VERSION)
	@touch $@

# HUB_PASSWORD / HUB_ADMIN_PASSWORD (HUB_AUTH=shared-password), MNIST_COURSE_DATA and
# MNIST_COURSE_DEVICE are read from the environment as they are.
hub: $(HUB_STAMP)
	HUB_DIR="$(abspath $(HUB_DIR))" HUB_IP="$(HUB_IP)" HUB_PORT="$(HUB_PORT)" HUB_AUTH="$(HUB_AUTH)" \
	    HUB_USERS="$(HUB_USERS)" HUB_ADMIN="$(HUB_ADMIN)" HUB_CHAPTERS="$(abspath $(HUB_CHAPTERS))" \
	    $(HUB_VENV)/bin/jupyterhub -f deploy/jupyterhub/jupyterhub_config.py $(HUB_ARGS)

# Hand the chapters out now, as each start of a student's server does (mnist_course.handout's
# rules), to each student of HUB_USERS: as root, writing as the student's own OS user (PAM).
hub-update: $(HUB_STAMP)
	@test "$$(id -u)" = 0 || { echo "make: hub-update writes as each student: run it as root" >&2; exit 1; }
	@for user in $(HUB_USERS); do \
	    home=$$(getent passwd "$$user" | cut -d: -f6); \
	    test -n "$$home" || { echo "make: $$user is not an OS user (the hub creates it)" >&2; exit 1; }; \
	    echo "$$user:"; \
	    $(HUB_VENV)/bin/python -I -m mnist_course.handout --pack "$(abspath $(HUB_CHAPTERS))" \
	    | ( umask 077; cd "$$home" && env -i PATH=/usr/bin:/bin HOME="$$home" \
	        setpriv --reuid="$$(id -u "$$user")" --regid="$$(id -g "$$user")" --clear-groups \
	        "$(abspath $(HUB_VENV))/bin/python" -I -m mnist_course.handout "$$home/mnist-course" --archive - ) \
	    || exit 1; \
	done

# Re-pin: uv resolves the dev and hub sets once for every platform (--universal: environment
# markers on what only Linux, macOS or Windows needs, e.g. nvidia-*, appnope, colorama) and writes
# $(LOCK) with PyPI's sha256 of every file; constraints.txt gets the same versions, one
# name==version a line, for `pip install -c`. The current pins are kept: delete or edit a line of
# constraints.txt to move that package. Then run `make test` (tests/test_lock.py).
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra dev --extra hub --universal \
	--python-version $(firstword $(SUPPORTED_PYTHONS)) --generate-hashes \
	--default-index https://pypi.org/simple --custom-compile-command "make lock"
lock: $(DEV_STAMP)
	$(LOCK_COMPILE) --quiet -c $(CONSTRAINTS) --output-file $(LOCK).new
	{ sed -n '/^#/p' $(CONSTRAINTS); sed -n 's/^\([A-Za-z0-9][^ ;]*==[^ ;]*\).*/\1/p' $(LOCK).new; } \
	    > $(CONSTRAINTS).new
	mv $(LOCK).new $(LOCK)
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf build .pytest_cache .ruff_cache
