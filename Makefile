# modelmon developer commands. `make test` is what CI runs (through .ci/run).
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PYTEST_ARGS ?=
IMAGE ?= modelmon:$(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' helm/modelmon/Chart.yaml)

.PHONY: help install example lint test test-unit test-integration crds chart-crds helm-lint \
        image image-local test-deps node-deps cluster-bins dev-cluster dev-cluster-down dev-cluster-status e2e-kind bench bench-scale bench-replicas bench-quick \
        calibration bench-estimation bench-bigwindow

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

install:  ## install modelmon (editable) with the test tools
	$(PIP) install --quiet --disable-pip-version-check -e '.[test]' -c constraints/test.txt

example:  ## run the bundled example check (no cluster needed)
	$(PIP) install --quiet --disable-pip-version-check -e .
	modelmon check examples/breast-cancer/monitor.yaml || [ $$? -eq 1 ]

lint:  ## ruff, mypy --strict (package, tests, examples, hack scripts), import contracts; shellcheck; actionlint (the workflows, their run steps through shellcheck; built once, cached)
	$(PYTHON) -m ruff check $(wildcard operator tests examples benchmarks hack)
	$(PYTHON) -m mypy
	PYTHONPATH=operator$${PYTHONPATH:+:$$PYTHONPATH} lint-imports --no-cache --no-logo
	shellcheck hack/*.sh
	hack/actionlint.sh

crds:  ## regenerate crds/ from the API models, and their copies in the chart and manifests/
	$(PYTHON) -m modelmon crd > crds/modelmonitors.modelmon.io.yaml
	$(MAKE) chart-crds

chart-crds:  ## copy crds/ into helm/modelmon/templates/crds/ and manifests/base/crd/
	$(PYTHON) hack/sync_crds.py

helm-lint:  ## helm lint --strict the chart (builds the pinned helm if missing)
	"$$(hack/cluster.sh bin helm)" lint --strict helm/modelmon

image:  ## build the operator image (needs Docker or another OCI builder; IMAGE=name:tag)
	docker build -t $(IMAGE) .

image-local:  ## the image from the Dockerfile on a Debian-built base, with buildah (cached), loaded into the local node; last line: its reference
	@hack/image-local.sh

test-deps:  ## Debian packages the tests and lint use (promtool, alertmanager, postgres, lua5.1, shellcheck, chromium)
	hack/install-test-deps.sh

node-deps:  ## Debian packages the local node needs (containerd, runc, CNI plugins, iptables, buildah, busybox-static)
	hack/install-test-deps.sh --node

test-unit: install  ## unit and packaging tests, no cluster (about 2,000 tests in 4 minutes on 2 busy cores)
	$(PYTHON) -m pytest tests/unit tests/packaging $(PYTEST_ARGS)

test-integration: install test-deps  ## integration tests on the local control plane
	$(PYTHON) -m pytest tests/integration $(PYTEST_ARGS)

test: install test-deps lint  ## everything CI runs: lint, unit, packaging, browser, benchmark smoke and integration tests, then the node tests where a node can run
	$(PYTHON) -m pytest tests $(PYTEST_ARGS)
	$(MAKE) test-node

test-node:  ## the tests marked node, on a cluster with a node of its own where this machine can run one (docs/local-node.md); at most MODELMON_CI_NODE_TIMEOUT s (1200), running out of time is reported, not failed
	@rc=0; PYTHON="$(PYTHON)" timeout --kill-after=60 "$${MODELMON_CI_NODE_TIMEOUT:-1200}" \
	  hack/ci-node.sh || rc=$$?; \
	if [ $$rc -eq 124 ] || [ $$rc -eq 137 ]; then \
	  echo "node: the node step ran out of time ($${MODELMON_CI_NODE_TIMEOUT:-1200}s); its tests did not finish"; \
	  rc=0; fi; exit $$rc

cluster-bins:  ## build etcd, kube-apiserver, kube-controller-manager, kubectl, helm (cached)
	hack/cluster.sh build

dev-cluster:  ## start the local control plane (builds what is missing; MODELMON_NODE=1 adds a node); prints export KUBECONFIG=...
	@hack/cluster.sh up

dev-cluster-down:  ## stop the local control plane
	hack/cluster.sh down

dev-cluster-status:  ## processes, ports and readiness of the local control plane
	hack/cluster.sh status

bench: install  ## modelmon vs Evidently, NannyML and scipy, then 1,000 monitors on one operator and 3,000 on three replicas; rewrites benchmarks/README.md (~60 min, installs the peers on first run)
	$(PYTHON) benchmarks/run.py

bench-scale: install  ## only the operator at scale (1,000 monitors, ~10 min), into the last saved run's report
	$(PYTHON) benchmarks/run.py --scale-only

bench-replicas: install  ## only the operator with 3 replicas (3,000 monitors, one replica killed; ~15 min), into the last saved run's report (else into its section of benchmarks/README.md)
	$(PYTHON) benchmarks/run.py --replicas-only

bench-quick:  ## the benchmark's smoke test: small workloads, modelmon and scipy only, no timings asserted
	$(PYTHON) benchmarks/run.py --quick --tools modelmon,bound,scipy --python current

calibration: install  ## drift false-alarm rates, power against Evidently, the effect floor; rewrites benchmarks/CALIBRATION.md (~15 min)
	$(PYTHON) benchmarks/calibration.py

bench-estimation: install  ## estimated performance (CBPE, DLE) against NannyML's: error per window and speed; rewrites benchmarks/ESTIMATION.md (~5 min)
	$(PYTHON) benchmarks/estimation.py

bench-bigwindow: install  ## 50,000,000 rows in PostgreSQL and as parquet: pushdown against the database's own scan, the check's RSS per window, row mode where it fits; rewrites the "Big windows" section of benchmarks/README.md (data cached, ~9 GiB; ~10 min to load the first time)
	$(PYTHON) benchmarks/bigwindow.py

e2e-kind:  ## the integration tests on a kind cluster (needs Docker; not run in CI)
	hack/kind-e2e.sh
