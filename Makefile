# modelmon developer commands. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PYTEST_ARGS ?=

.PHONY: help install example lint test test-unit test-integration crds test-deps \
        cluster-bins dev-cluster dev-cluster-down dev-cluster-status e2e-kind

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install modelmon (editable) with the test tools
	$(PIP) install --quiet --disable-pip-version-check -e '.[test]'

example:  ## run the bundled example check (no cluster needed)
	$(PIP) install --quiet --disable-pip-version-check -e .
	modelmon check examples/breast-cancer/monitor.yaml || [ $$? -eq 1 ]

lint:  ## ruff and mypy --strict (package, tests and examples)
	$(PYTHON) -m ruff check operator tests examples benchmarks
	$(PYTHON) -m mypy

crds:  ## regenerate crds/ from the API models
	$(PYTHON) -m modelmon crd > crds/modelmonitors.modelmon.io.yaml

test-deps:  ## Debian packages the integration tests use (promtool, alertmanager, postgres)
	hack/install-test-deps.sh

test-unit: install  ## unit tests only: no cluster, about a minute
	$(PYTHON) -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install test-deps  ## integration tests on the local control plane
	$(PYTHON) -m pytest tests/integration $(PYTEST_ARGS)

test: install test-deps lint  ## everything CI runs: lint, unit and integration tests
	$(PYTHON) -m pytest tests $(PYTEST_ARGS)

cluster-bins:  ## build etcd, kube-apiserver, kube-controller-manager, kubectl, helm (cached)
	hack/cluster.sh build

dev-cluster:  ## start the local control plane (builds what is missing); prints export KUBECONFIG=...
	@hack/cluster.sh up

dev-cluster-down:  ## stop the local control plane
	hack/cluster.sh down

dev-cluster-status:  ## processes, ports and readiness of the local control plane
	hack/cluster.sh status

e2e-kind:  ## the integration tests on a kind cluster (needs Docker; not run in CI)
	hack/kind-e2e.sh
