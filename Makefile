# certsync — see README.md. Two commands matter on a fresh machine:
#   make demo   the whole loop on embedded defaults (local Git, ACME CA, API server)
#   make test   everything the tests need, then the tests
SHELL := /usr/bin/env bash
GO ?= go
TOOLS_DIR ?= $(or $(CERTSYNC_TOOLS_DIR),$(HOME)/.cache/certsync/tools)
export CERTSYNC_TOOLS_DIR := $(TOOLS_DIR)

.PHONY: all build tools demo-tools demo test lint bench clean image

all: build

build:
	$(GO) build -o bin/certsync ./cmd/certsync
	$(GO) build -o bin/certsync-demo ./cmd/certsync-demo

# The real programs the tests and the demo run against, built once from the
# Go module proxy and cached in $(TOOLS_DIR).
tools:
	@bash hack/build-tools.sh >/dev/null

# The demo needs the API server, etcd and sops, not the linters.
demo-tools:
	@bash hack/build-tools.sh demo >/dev/null

demo: demo-tools build
	./bin/certsync-demo --certsync ./bin/certsync --example examples/repo

lint: tools
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS_DIR)/actionlint .github/workflows/*.yml

# The race detector is on for every package: concurrent orders, the batch
# writer and the agent's loops are where races hide.
test: tools lint
	$(GO) test -race -count=1 -timeout 45m ./...

# Benchmarks: the scale figures (10,000 certificates) quoted in issues.
# They also need kubectl (the yardstick of BenchmarkRestore10k), which
# `make test` and `make demo` do not build.
bench:
	@bash hack/build-tools.sh bench >/dev/null
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...

# The container image, built with Go alone (no Docker, no base image):
# static certsync for linux/amd64 and linux/arm64, CA roots, user 65532.
# Writes the OCI image layout bin/image and prints its digest; the same
# commit gives the same digest. Push: crane push bin/image REF.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
image:
	$(GO) run ./cmd/certsync-image --out bin/image --version $(VERSION)

clean:
	rm -rf bin
