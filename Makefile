# Realtime GenAI API Labs. The two commands: `make lab` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCK   := requirements/lock.txt
STAMP  := $(VENV)/.installed-stamp
LAB    ?=
PYTEST := $(BIN)/pytest -p no:cacheprovider
# Extra arguments for the program a target runs: make lab ARGS="--no-browser --port 8890",
# make gateway ARGS="--port 9000". JUPYTER_ARGS is the older name, still honoured by make lab.
ARGS         ?=
JUPYTER_ARGS ?=
# The notebook JupyterLab opens on; served from the repository root so labs/ is in reach.
LAB_START    ?= notebooks/00_start_here.ipynb
# The project's JupyterLab settings (no news pop-up); added to, not replacing, the user's own.
export JUPYTER_CONFIG_PATH := $(CURDIR)/etc/jupyter$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))

.PHONY: lab test setup lint sync-check suite skeleton-check ladder-check check labs reset-lab \
        catch-up gateway cheatsheet handout lock bench clean

## lab: set up .venv if needed, then open JupyterLab on the course's first notebook
lab: setup
	@root=; if [ "$$(id -u)" = 0 ]; then root=--allow-root; \
	  echo "make lab: running as root, so --allow-root was added (JupyterLab refuses root without it)"; fi; \
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" $$root $(ARGS) $(JUPYTER_ARGS) "$(LAB_START)"

## test: set up .venv if needed, then lint, labs-in-sync, the whole suite, skeleton-must-fail,
## and the ladder (each lab passes once the labs before it are done)
test: setup lint sync-check suite skeleton-check ladder-check
	@echo "make test: all checks passed"

## setup: create .venv and install the exact tested versions (quick when nothing changed)
setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Python 3.11 or newer is needed; found: $$($(PYTHON) --version 2>&1)."; \
	  echo "Install it, or point make at it: make test PYTHON=python3.11"; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "Could not create $(VENV). On Debian/Ubuntu: sudo apt-get install python3-venv"; \
	  rm -rf $(VENV); exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(LOCK) -e ".[dev]"
	@touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## sync-check: fail when labs/ is not what tools/make_labs.py generates from reference_impl/
sync-check: setup
	$(BIN)/python tools/make_labs.py --check

## suite: the whole test suite against reference_impl/
suite: setup
	$(PYTEST) --impl=reference

## skeleton-check: every lab test must fail on a freshly generated, untouched skeleton
skeleton-check: setup
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BIN)/python tools/make_labs.py --out "$$tmp/labs" >/dev/null && \
	PYTHONPATH="$$tmp" $(PYTEST) --impl=labs --skeleton-must-fail -q --tb=no -rN

## ladder-check: with labs 01..NN solved and the rest cut out, lab NN's checks pass
ladder-check: setup
	$(BIN)/python tools/ladder_check.py

## check: grade your lab code (make check LAB=04, or every lab with make check)
check: setup
	$(PYTEST) --impl=labs --lab=$(or $(LAB),all) -q

## labs: regenerate labs/ from reference_impl/ (refuses to overwrite edited lab files)
labs: setup
	$(BIN)/python tools/make_labs.py $(if $(FORCE),--force)

## reset-lab: restore one lab's blocks to the skeleton (make reset-lab LAB=04); backs up first
reset-lab: setup
	@test -n "$(LAB)" || { echo "usage: make reset-lab LAB=04"; exit 2; }
	$(BIN)/python tools/make_labs.py --reset $(LAB)

## catch-up: solve labs 01..NN for a learner who fell behind (make catch-up UPTO=04); their
## work on later labs stays, and every file it changes is backed up to .lab-backups/ first
catch-up: setup
	@test -n "$(UPTO)" || { echo "usage: make catch-up UPTO=04"; exit 2; }
	$(BIN)/python tools/catch_up.py $(UPTO)

## gateway: run the gateway on http://127.0.0.1:8000 (make gateway ARGS="--port 9000")
gateway: setup
	$(BIN)/python -m course.serve $(ARGS)

## cheatsheet: regenerate docs/cheatsheet.md from quizzes/rules.yaml
cheatsheet: setup
	$(BIN)/python -m quizzes cheatsheet --out docs/cheatsheet.md

## handout: the printable one-page handout (six-line cheat sheet, SSE-or-WebSocket table)
handout: setup
	$(BIN)/python -m quizzes.handout --out build/handout.html

## bench: the gateway's whole job in one table (cost, first token, 500 streams, memory, cancel,
## limits), written to docs/benchmarks.md and .bench/results.json. Not part of make test; a few
## minutes, loopback only; run it on a quiet machine. Exits 1 when a target is missed, naming it.
bench: setup
	$(BIN)/python -m bench

## lock: re-resolve the exact versions in requirements/lock.txt after changing pyproject.toml
lock:
	$(BIN)/pip-compile --quiet --strip-extras --extra dev --no-emit-index-url --no-emit-find-links -o $(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
