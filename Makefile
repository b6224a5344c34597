# nvrd: the appliance NVR firmware. Targets a newcomer can guess.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BUILD_ID  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.buildID=$(BUILD_ID)
GOBIN     := $(shell $(GO) env GOPATH)/bin
# Tests run with a bounded time; the whole suite must stay well under CI's budget.
TESTFLAGS ?= -timeout 25m

.PHONY: all build demo test deps lint vet bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/nvrd ./firmware/cmd/nvrd

deps:
	./.ci/install-deps

vet:
	$(GO) vet ./...

lint: deps vet
	$(GOBIN)/staticcheck ./...

test: deps lint build
	$(GO) test $(TESTFLAGS) ./...

demo: build
	./bin/nvrd demo --dir var

bench: build
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 30m ./ringstore/...

fuzz:
	./.ci/fuzz

clean:
	rm -rf bin var
