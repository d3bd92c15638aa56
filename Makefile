# mlop-agent. `make help` lists the targets.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
# -race needs cgo and a C compiler; without one the tests run without it.
RACE    ?= $(shell scripts/race-flag.sh)
FUZZTIME ?= 60s

# make stand-in: the stand-in's listen ports on STANDIN_HOST (a self-hosted
# server's ports; S3 has none there) and its accepted key (mlopfake.DefaultKey).
STANDIN_HOST   ?= 127.0.0.1
STANDIN_API    ?= 3001
STANDIN_INGEST ?= 3003
STANDIN_PY     ?= 3004
STANDIN_S3     ?= 3005
STANDIN_KEY    ?= mlpi_testkey

.PHONY: help build test vet fmt demo stand-in chaos fuzz bench bench-quick bench-micro release clean tidy mutate

help:
	@echo "make build    static binary bin/mlop-agent (CGO_ENABLED=0)"
	@echo "make test     go vet + go test $(RACE) ./... (what CI runs; under 10 minutes on 2 cores)"
	@echo "make demo     build, start the mlop stand-in on loopback, backfill testdata/demo, print what arrived"
	@echo "make stand-in build bin/mlopfake and run it on $(STANDIN_HOST) (api $(STANDIN_API), ingest $(STANDIN_INGEST), py $(STANDIN_PY), S3 $(STANDIN_S3); key $(STANDIN_KEY)) until Ctrl-C"
	@echo "make chaos    long crash/outage/rotation runs (minutes)"
	@echo "make mutate   break each delivery rule in turn (compiler overlay) and check a unit test fails"
	@echo "make fuzz     run every fuzz target for FUZZTIME ($(FUZZTIME)) each"
	@echo "make bench    end-to-end benchmark of the built binary against loopback receivers; prints a table (under 10 minutes)"
	@echo "make bench-quick  the same, reduced (about 30 s)"
	@echo "make bench-micro  Go micro-benchmarks of the hot paths (parsers, encoders, stand-in)"
	@echo "make release  static binaries for linux/amd64 and linux/arm64 in dist/"

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/mlop-agent ./cmd/mlop-agent

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || (echo "gofmt needed:"; gofmt -l .; exit 1)

test: vet
	$(GO) test $(RACE) -timeout 9m ./...

demo: build
	$(GO) run ./internal/tools/demo -agent bin/mlop-agent -dir testdata/demo

stand-in:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/mlopfake ./cmd/mlopfake
	bin/mlopfake -api $(STANDIN_HOST):$(STANDIN_API) -ingest $(STANDIN_HOST):$(STANDIN_INGEST) \
		-py $(STANDIN_HOST):$(STANDIN_PY) -s3 $(STANDIN_HOST):$(STANDIN_S3) -key $(STANDIN_KEY) $(STANDIN_FLAGS)

chaos:
	MLOP_AGENT_CHAOS=1 $(GO) test $(RACE) -timeout 60m -run 'Chaos|Crash|Outage|Rotation' -v ./cmd/mlop-agent/

fuzz:
	scripts/fuzz.sh $(FUZZTIME)

mutate:
	scripts/mutate.sh

bench: build
	$(GO) run ./internal/tools/bench -agent bin/mlop-agent $(BENCHFLAGS)

bench-quick: build
	$(GO) run ./internal/tools/bench -agent bin/mlop-agent -quick $(BENCHFLAGS)

bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./parsers/... ./sink/... ./watcher/... ./internal/mlopfake/... ./verify/...

release:
	@mkdir -p dist
	for arch in amd64 arm64; do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o dist/mlop-agent-linux-$$arch ./cmd/mlop-agent || exit 1; \
	done
	cd dist && sha256sum mlop-agent-linux-* > SHA256SUMS

tidy:
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

clean:
	rm -rf bin dist demo-out
