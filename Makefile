# Two commands do all the set-up on a fresh machine (Python 3.11+, Java 17+ and Maven needed):
#   make demo   the demo pipeline on the embedded defaults, live counts until Ctrl-C
#   make test   lint, then every test against a real broker and the embedded ClickHouse
#   make test-fast  the tests that need no broker (unit tests, embedded ClickHouse), for the
#               edit-run loop: under two minutes
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# What the tests drive besides Python: Prometheus scrapes the runtime, Chromium opens the
# built-in dashboard, docker-compose checks docker-compose.yml, kcat writes commands as an outside
# client would (librdkafka: every codec, headers) (Debian's packages).
SYSTEM_TOOLS := prometheus chromium docker-compose kcat
# What `make bench` drives besides Python: wrk loads the edge over HTTP (Debian's package).
BENCH_TOOLS := wrk

# The peer of the benchmarks lives in a virtualenv of its own: Quix Streams pins its own
# confluent-kafka, which must not change the project's environment.
QUIX_VENV := .cache/bench-quix

# deploy/k8s is checked offline: kustomize builds it, kubeconform validates it against the
# Kubernetes schemas (made from the OpenAPI document of a pinned Kubernetes release, from the Go
# module proxy) and the operators' resources' schemas (deploy/k8s/schemas). Needs Go 1.22+.
K8S_TOOLS           := .cache/k8s
KUSTOMIZE_VERSION   := v5.7.1
KUBECONFORM_VERSION := v0.7.0
KUBERNETES_VERSION  := v1.34.2
K8S_STAMP := $(K8S_TOOLS)/.installed-$(KUSTOMIZE_VERSION)-$(KUBECONFORM_VERSION)-$(KUBERNETES_VERSION)

.PHONY: install system-tools k8s-tools demo test test-fast soak bench lint format broker-start broker-stop clean

# The compiled parts (dedupe's index, the source's record reader: a Rust crate): an install from source needs cargo >= 1.87
# (rustup puts it in ~/.cargo/bin, here before any older one on the PATH: Debian's is too old);
# a change to the crate installs again, which rebuilds it.
export PATH := $(HOME)/.cargo/bin:$(PATH)
NATIVE := $(wildcard operators/native/Cargo.toml operators/native/Cargo.lock operators/native/src/*.rs)

# --resume-retries: a download the network cuts short is resumed, not failed (PyPI's
# connection drops at times)
$(STAMP): pyproject.toml $(NATIVE)
	@command -v cargo >/dev/null || { echo "the compiled parts (dedupe's index, the source's record reader) are a Rust crate: install a Rust toolchain >= 1.87 (https://rustup.rs), then make install again" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --resume-retries 20 -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/cqrs demo

$(K8S_STAMP): deploy/k8s/schemas.py
	GOBIN=$(abspath $(K8S_TOOLS)/bin) GOTOOLCHAIN=local go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	GOBIN=$(abspath $(K8S_TOOLS)/bin) GOTOOLCHAIN=local go install github.com/yannh/kubeconform/cmd/kubeconform@$(KUBECONFORM_VERSION)
	dir=$$(cd /tmp && GOTOOLCHAIN=local GOFLAGS=-mod=mod go mod download -json k8s.io/kubernetes@$(KUBERNETES_VERSION) \
		| $(PYTHON) -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') && \
	rm -rf $(K8S_TOOLS)/schemas/kubernetes && \
	$(PYTHON) deploy/k8s/schemas.py $$dir/api/openapi-spec/swagger.json $(K8S_TOOLS)/schemas/kubernetes
	touch $@

k8s-tools: $(K8S_STAMP)

system-tools:
	@missing=""; for tool in $(SYSTEM_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing (Debian packages)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq$$missing >/dev/null; \
	fi

test: $(STAMP) lint system-tools k8s-tools
	$(BIN)/pytest

test-fast: $(STAMP) system-tools k8s-tools
	$(BIN)/pytest -m "not slow and not soak"

# `cqrs deploy` cycles against one runtime under a steady producer (twenty at a tenth of the
# pipeline's maximum rate, five at half): every cycle promotes, the runtime's footprint stays
# flat (figures in test-artifacts/footprint-*.json).
soak: $(STAMP)
	$(BIN)/pytest -m soak -s tests/reliability/test_footprint.py

# Issue 16's acceptance at its full size, outside the suite (whose budget it exceeds): orders
# v1 over 200,000 commands on 2 processes, a kill -9 of the child midway, resumes 2 -> 1 and
# 1 -> 2 processes, the projections equal to the oracle after each (the suite runs 100,000).
.PHONY: acceptance-cluster
acceptance-cluster: $(STAMP)
	CQRS_CLUSTER_COMMANDS=200000 $(BIN)/pytest --durations=1 tests/integration/deploy/test_cluster.py

$(QUIX_VENV)/.installed:
	$(PYTHON) -m venv $(QUIX_VENV)
	$(QUIX_VENV)/bin/pip install -q --upgrade pip
	$(QUIX_VENV)/bin/pip install -q --resume-retries 20 quixstreams clickhouse-connect chdb msgspec pyyaml
	touch $@

bench: $(STAMP) $(QUIX_VENV)/.installed
	$(BIN)/pip install -q --resume-retries 20 -e '.[bench]'
	$(MAKE) --no-print-directory system-tools SYSTEM_TOOLS="$(BENCH_TOOLS)"
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

broker-start: $(STAMP)
	$(BIN)/cqrs broker start

broker-stop: $(STAMP)
	$(BIN)/cqrs broker stop

clean:
	-$(BIN)/cqrs broker stop
	rm -rf $(VENV) .data .pytest_cache .ruff_cache operators/native/target operators/_native*.so
