# Parley's two commands are `make up` and `make test`; both install what is
# missing first (scripts/deps.sh). `make bench` runs the benchmarks in docs/;
# `make fuzz` runs every fuzz target for FUZZTIME (default 30s) each.
# `make soak` runs the soak (internal/soak: 2,000 users, supernodes killed and
# restarted, a third at once) for SOAK_DURATION of load (default 1h), and
# writes its numbers to SOAK_REPORT (default bin/soak-report.json).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
export GOFLAGS := -buildvcs=false
GO ?= go
BIN := bin/parley
# The VCS revision `parley version` prints (GOFLAGS above keeps the go
# command from recording it): git describe in a checkout, else "unknown".
REVISION ?= $(shell git describe --always --dirty 2>/dev/null || echo unknown)

.PHONY: up test bench fuzz soak deps build clean

up: build
	./$(BIN) up

test: deps
	scripts/test.sh

bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 2s ./codec/
	$(GO) test -run '^$$' -bench DirectoryLookup -benchtime 20000x ./supernode/
	$(GO) test -run '^$$' -bench 'RefreshTraffic|SupernodeMemoryPerClient|SupernodeCPUPerClient' -benchtime 1x ./supernode/
	$(GO) test -run '^$$' -bench LoginServerCost -benchtime 1x ./login/
	$(GO) test -run '^$$' -bench 'CallSetup|MessageDelivered' -benchtime 20x ./client/
	$(GO) test -run '^$$' -bench GroupMessage -benchtime 5x ./client/
	$(GO) test -run '^$$' -bench ConferenceMesh -benchtime 1x ./client/
	$(GO) test -run '^$$' -bench HostMixing -benchtime 500x ./client/
	$(GO) test -run '^$$' -bench LabCallSetup -benchtime 5x ./cmd/parley/
	$(GO) test -run '^$$' -bench LabCallBits -benchtime 1x ./cmd/parley/
	$(GO) test -run '^$$' -bench LabNetworkChange -benchtime 20x ./cmd/parley/
	scripts/relaybench.sh
	$(GO) test -run '^$$' -bench BrowserCallSetup -benchtime 20x ./cmd/parley/
	$(GO) test -run '^$$' -bench LabFileTransfer -benchtime 1x -timeout 60m ./cmd/parley/
	$(GO) test -run '^$$' -bench 'LoopbackFileTransfer|LabCallBesideFile' -benchtime 1x -timeout 30m ./cmd/parley/

fuzz: deps
	scripts/fuzz.sh

SOAK_DURATION ?= 1h
SOAK_REPORT ?= bin/soak-report.json
soak: deps
	mkdir -p $(dir $(SOAK_REPORT))
	$(GO) test -count=1 -v -run '^TestSoak$$' -timeout 0 ./internal/soak/ -soak.duration $(SOAK_DURATION) -soak.report $(abspath $(SOAK_REPORT))

build: deps
	$(GO) build -ldflags "-X main.revision=$(REVISION)" -o $(BIN) ./cmd/parley

deps:
	scripts/deps.sh

clean:
	rm -rf bin parley-data
