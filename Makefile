# WCP360 — `make demo` brings the panel up, `make test` runs every test.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
BIN := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/wcp360/wcp360/internal/version.Version=$(VERSION)
GOLANGCI_VERSION := v2.15.0
PKGS := ./...

.PHONY: all deps build test unit vet fmt-check lint bench fuzz demo demo-stop clean

all: build

deps:
	./hack/install-deps.sh

build: deps
	@mkdir -p $(BIN)
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/wcpd ./cmd/wcp ./cmd/wcp-sandbox

# Every test, with the race detector, against real PostgreSQL clusters that
# the harness starts itself.
test: deps vet fmt-check lint
	$(GO) test -race -shuffle=on -count=1 -timeout 25m $(PKGS)

vet:
	$(GO) vet $(PKGS)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [[ -n "$$out" ]]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

$(BIN)/golangci-lint:
	@mkdir -p $(BIN)
	GOBIN=$(CURDIR)/$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION)

lint: deps $(BIN)/golangci-lint
	$(BIN)/golangci-lint run $(PKGS)

# Benchmarks: figures, not pass/fail. See docs/benchmarks.md. They create
# thousands of Linux users, so they run inside a sandbox.
BENCHES := Apply1000Tenants1000Domains Apply1000PHPTenants RSS10000Resources Converge1000Tenants NoopResync1000Tenants ApplyToPage ApplyToHTTPS NoisyNeighbour
bench: build
	@rm -f bench.out
	@# Each end-to-end benchmark gets a fresh sandbox: an empty host.
	set -o pipefail; for b in $(BENCHES); do \
		$(BIN)/wcp-sandbox -- $(GO) test -run '^$$' -bench "^Benchmark$$b$$" -benchtime 1x -timeout 30m ./test/bench/ | tee -a bench.out || exit 1; \
	done
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 10m ./internal/reconcile/ | tee -a bench.out
	@# nginx -t/reload/RSS at 1,000 and 10,000 sites; PHP-FPM cold start and idle memory.
	$(BIN)/wcp-sandbox -- $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./internal/host/nginx/ ./internal/host/phpfpm/ | tee -a bench.out

# Short fuzz runs of every fuzz target (the committed corpus runs in `make test`).
FUZZTIME ?= 30s
fuzz: deps
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./apis/v1alpha1/
	$(GO) test -run '^$$' -fuzz '^FuzzQuantity$$' -fuzztime $(FUZZTIME) ./apis/v1alpha1/
	$(GO) test -run '^$$' -fuzz '^FuzzYAMLStrings$$' -fuzztime $(FUZZTIME) ./apis/v1alpha1/
	$(GO) test -run '^$$' -fuzz '^FuzzLoad$$' -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseEnvFile$$' -fuzztime $(FUZZTIME) ./internal/host/acme/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/host/users/
	$(GO) test -run '^$$' -fuzz '^FuzzAddUser$$' -fuzztime $(FUZZTIME) ./internal/host/users/
	$(GO) test -run '^$$' -fuzz '^FuzzParseKey$$' -fuzztime $(FUZZTIME) ./internal/reconcile/
	$(GO) test -run '^$$' -fuzz '^FuzzRender$$' -fuzztime $(FUZZTIME) ./internal/host/nginx/
	$(GO) test -run '^$$' -fuzz '^FuzzWithInclude$$' -fuzztime $(FUZZTIME) ./internal/host/nginx/
	$(GO) test -run '^$$' -fuzz '^FuzzRenderINI$$' -fuzztime $(FUZZTIME) ./internal/host/phpfpm/
	$(GO) test -run '^$$' -fuzz '^FuzzVerify$$' -fuzztime $(FUZZTIME) ./internal/auth/token/
	$(GO) test -run '^$$' -fuzz '^FuzzParseAPIToken$$' -fuzztime $(FUZZTIME) ./internal/auth/token/
	$(GO) test -run '^$$' -fuzz '^FuzzValidUser$$' -fuzztime $(FUZZTIME) ./internal/auth/pam/
	$(GO) test -run '^$$' -fuzz '^FuzzParsePSI$$' -fuzztime $(FUZZTIME) ./internal/host/cgroup/
	$(GO) test -run '^$$' -fuzz '^FuzzParseCPUMax$$' -fuzztime $(FUZZTIME) ./internal/host/cgroup/
	$(GO) test -run '^$$' -fuzz '^FuzzParseIOMax$$' -fuzztime $(FUZZTIME) ./internal/host/cgroup/
	$(GO) test -run '^$$' -fuzz '^FuzzParseV1Throttle$$' -fuzztime $(FUZZTIME) ./internal/host/cgroup/
	$(GO) test -run '^$$' -fuzz '^FuzzParseProcCgroup$$' -fuzztime $(FUZZTIME) ./internal/host/cgroup/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/host/mountinfo/

demo: build
	./hack/demo.sh

demo-stop:
	./hack/demo.sh stop

clean:
	rm -rf $(BIN) bench.out
