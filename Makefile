# nodepool-temporal. `make` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO      ?= go
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/nodepool-temporal/nodepool-temporal/worker.Version=$(VERSION) -X github.com/nodepool-temporal/nodepool-temporal/internal/launchconfig.Version=$(VERSION)
BIN     := bin
CMDS    := nodepool-launcher nodepool simcloud ec2sim devstack ossim
# Packages whose tests run with the race detector (the rest run without: the end-to-end
# tests drive separate processes, and race builds are slow on small machines).
RACE_PKGS := ./zookeeper/... ./config/... ./drivers/... ./lifecycle/... ./activities/... ./workflows/... ./poller/...

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: deps
deps: ## install system packages (ZooKeeper, kazoo, upstream Nodepool's Python libraries) when missing
	scripts/install-deps.sh
	scripts/install-interop-deps.sh

$(BIN)/temporal-dev: $(shell find tools/devtemporal -type f 2>/dev/null)
	scripts/build-temporal-dev.sh $@

.PHONY: temporal-dev
temporal-dev: ## build the dev Temporal server with its Web UI (bin/temporal-dev)
	scripts/build-temporal-dev.sh $(BIN)/temporal-dev

$(BIN)/temporal: $(shell find tools/temporalcli -type f 2>/dev/null)
	scripts/build-temporal-cli.sh $@

.PHONY: temporal-cli
temporal-cli: ## build the Temporal CLI from source, at the version tools/temporalcli pins (bin/temporal)
	scripts/build-temporal-cli.sh $(BIN)/temporal

.PHONY: build
build: temporal-dev temporal-cli ## build the launcher, the admin CLI, the sim clouds, the dev stack, the dev server and the Temporal CLI into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))

.PHONY: check-imports
check-imports: ## enforce the one-way package arrows of docs/design.md
	scripts/check-imports.sh

.PHONY: vet
vet: ## go vet and gofmt every package
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

.PHONY: test
test: deps build check-imports vet ## run every test (installs and starts what they need)
	TEMPORAL_DEV_BIN=$(CURDIR)/$(BIN)/temporal-dev NODEPOOL_BIN_DIR=$(CURDIR)/$(BIN) \
		$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)
	TEMPORAL_DEV_BIN=$(CURDIR)/$(BIN)/temporal-dev NODEPOOL_BIN_DIR=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -p 1 -timeout 40m $$($(GO) list ./... | grep -v -E '/(zookeeper|config|drivers|lifecycle|activities|workflows|poller)(/|$$)')
	GOWORK=off $(GO) -C tools/devtemporal test -count=1 ./internal/...

.PHONY: run
run: deps build ## run ZooKeeper, Temporal (Web UI on :8233) and the launcher on a simulated cloud
	$(BIN)/devstack -c examples/nodepool.yaml --dir .run --bin $(BIN)

.PHONY: run-cluster
run-cluster: deps build ## run the production topology: PostgreSQL, Temporal's four services, 3 ZooKeepers, pollers, workers (docs/cluster.md)
	$(BIN)/devstack --cluster --dir .run-cluster --bin $(BIN)

.PHONY: test-cluster
test-cluster: deps build ## the end-to-end and chaos tests on the production topology (NODEPOOL_CHAOS=long for the long burst)
	NODEPOOL_CLUSTER_TESTS=1 TEMPORAL_DEV_BIN=$(CURDIR)/$(BIN)/temporal-dev NODEPOOL_BIN_DIR=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -p 1 -timeout 60m -v -run '^TestCluster' ./e2e ./chaos

.PHONY: bench
bench: deps build ## measure launch latency and throughput on the sim cloud (see docs/benchmarks.md)
	scripts/bench.sh

.PHONY: chaos
chaos: deps build ## fault-injection suite, long version; writes docs/reliability.md
	NODEPOOL_CHAOS=long NODEPOOL_CHAOS_REPORT=$(CURDIR)/docs/reliability.md \
		TEMPORAL_DEV_BIN=$(CURDIR)/$(BIN)/temporal-dev NODEPOOL_BIN_DIR=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -timeout 180m -v ./chaos

.PHONY: interop
interop: deps build ## only the test beside upstream Nodepool's own launcher and CLI (interop/)
	TEMPORAL_DEV_BIN=$(CURDIR)/$(BIN)/temporal-dev NODEPOOL_BIN_DIR=$(CURDIR)/$(BIN) \
		$(GO) test -count=1 -timeout 10m -v ./interop

.PHONY: clean
clean: ## remove built binaries and local run state
	rm -rf $(BIN) .run
