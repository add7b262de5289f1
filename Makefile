# The two set-up commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast reliability install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# The CPU wheel of torch, pinned: an unpinned install pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,all]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/polytask demo --output-dir runs/demo --overwrite

# pytest exits 5 when it collected no test: that is a failure here, never a silent pass.
test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider

# Local iterations: everything but the tests marked slow (>= 10 s each; CI runs them all).
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

# Crash, corruption and hostile-input cases (also part of `make test`).
reliability: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/reliability \
		tests/integration/test_resume.py tests/integration/test_validation_cli.py \
		tests/integration/test_non_finite.py

clean:
	rm -rf $(VENV) runs .pytest_cache
