# Two entry points for a new user: `make demo` and `make test`. Both create .venv and install on first use.
# On a machine with an NVIDIA driver the CPU constraint is dropped and pip takes the CUDA build of torch.
VENV ?= .venv
PYTHON ?= python3
CONSTRAINTS ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,-c constraints-cpu.txt)
PYTEST_ARGS ?=
# `make test` runs the suite on TEST_WORKERS processes (pytest-xdist), a test file per worker at a time so
# its module fixtures are built once; torch renders on one thread per worker (tests/fixtures), so two
# workers fill a 2-core machine. TEST_WORKERS=0 runs in this process alone.
TEST_WORKERS ?= 2

.PHONY: install demo test test-fast lint bench

$(VENV)/.installed: pyproject.toml constraints-cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q $(CONSTRAINTS) -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/ltx2-batch manifest=demo

test: install
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The unit tier: pure Python and pure libraries, no process, no model, no Ray (tests/unit/conftest.py
# enforces it). The inner loop: seconds.
test-fast: install
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) tests/unit $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check ltx2_batch tests bench
	$(VENV)/bin/ruff format --check ltx2_batch tests bench
	$(VENV)/bin/mypy
