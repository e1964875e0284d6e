# Slate — build, test, benchmark and demo. Every Debian package any target needs is listed in
# DEB_PACKAGES (here and in mk/*.mk) and installed by `make deps`.
SHELL := /bin/bash
GO ?= go
export GOFLAGS := -mod=mod
export CGO_ENABLED := 0
BIN := bin
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

DEB_PACKAGES := ca-certificates git make iproute2 procps psmisc curl jq

# Each concern adds its packages, assets and bench steps in its own file.
include $(sort $(wildcard mk/*.mk))

.PHONY: all deps build test bench demo demo-down lint assets clean
all: build

deps:
	@scripts/deps.sh $(sort $(DEB_PACKAGES))

assets: $(ASSET_TARGETS)

build: assets
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/slate ./cmd/slate
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/slate-agent ./cmd/slate-agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/slate-lab ./cmd/slate-lab

# The whole suite: unit, store, HTTP, real-peer network tests in namespaces, QEMU end to end.
test: deps build
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m -p 2 $(TEST_FLAGS) ./...

bench: deps build
	@scripts/bench.sh

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

demo: deps build
	@scripts/demo.sh

demo-down:
	@scripts/demo.sh down

clean:
	rm -rf $(BIN)
