# CNN building blocks from scratch, in NumPy: every command a user needs.
#   make all    main job: student release, reference notebooks run, demo class graded, site built
#   make test   every test (installs everything first, Chromium included)
#   make lab    the student release, opened in JupyterLab
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all install frameworks system-deps browser postgres release run-notebooks demo site lab test test-fast bench refdata clean

all: release run-notebooks demo site  ## the main job

install: $(STAMP)  ## create .venv and install the course with its test tools and the frameworks

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,frameworks]'
	touch $(STAMP)

frameworks:  ## PyTorch, Keras 3 and TensorFlow for the "In the frameworks" cells (the extra .[frameworks])
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[frameworks]'

system-deps:  ## Debian's bubblewrap and libseccomp's Python binding, for the grading sandbox (apt, when missing and root)
	@if [ ! -x /usr/bin/bwrap ] || ! /usr/bin/python3 -c "import seccomp" 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap python3-seccomp >/dev/null; \
	  else echo "the grading sandbox needs bubblewrap and python3-seccomp: sudo apt-get install bubblewrap python3-seccomp"; fi; \
	fi

browser:  ## Debian's chromium for the browser tests (installed with apt when missing and root)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core >/dev/null; \
	  else echo "browser tests need /usr/bin/chromium: sudo apt-get install chromium"; fi; \
	fi

postgres:  ## Debian's postgresql for the gradebook tests (installed with apt when missing and root)
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	  else echo "PostgreSQL tests need Debian's postgresql: sudo apt-get install postgresql"; fi; \
	fi

release: $(STAMP)  ## the student edition of every notebook, in release/
	$(BIN)/cnn-course release

run-notebooks: $(STAMP)  ## execute every reference notebook top to bottom, with timings
	$(BIN)/python -c "import sys; from helpers.instructor.runner import run_sources; from helpers.instructor.course import ROOT; print('reference notebooks:'); t = run_sources(ROOT, sys.stdout, jobs=2)"

demo: $(STAMP) system-deps  ## grade a synthetic class end to end in demo/
	$(BIN)/cnn-course demo --jobs $(JOBS)

site: $(STAMP)  ## the student and instructor editions as web pages, in site/
	$(BIN)/cnn-course site

lab: release  ## open JupyterLab on the student release
	$(BIN)/jupyter lab --notebook-dir=release $(if $(filter 0,$(shell id -u)),--allow-root,)

test: $(STAMP) system-deps browser postgres  ## every test
	$(BIN)/python -m pytest -ra

test-fast: $(STAMP)  ## the tests that execute no notebook and start no browser
	$(BIN)/python -m pytest -ra -m "not slow and not browser"

bench: $(STAMP) system-deps postgres  ## timings: notebook execution, autograde throughput, local against Dask
	$(BIN)/python -m helpers.instructor.bench

refdata: $(STAMP)  ## rewrite data/reference_outputs.h5 from the source notebooks
	$(BIN)/cnn-course refdata

clean:
	rm -rf release submitted autograded feedback exports reports site demo gradebook.db .cnn-course-state tests/artifacts
