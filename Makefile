# AuraOS realtime. `make run` and `make test` do all set-up on a fresh machine.
GO       ?= go
BIN      := bin/auraos
ADDR     ?= :5000
DATA_DIR ?= ./data
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

FUZZTIME ?= 3s

.PHONY: build run test lint bench fuzz clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/auraos

run: build
	./$(BIN) serve --addr $(ADDR) --data-dir $(DATA_DIR)

E2E_JS := cmd/auraos/testdata/e2e

# PostgreSQL tests run when AURAOS_TEST_POSTGRES_URL is set and skip otherwise.
# The end-to-end suite drives the real server with the official JavaScript
# socket.io-client, installed here from the committed lockfile.
test: $(E2E_JS)/node_modules/.package-lock.json
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

$(E2E_JS)/node_modules/.package-lock.json: $(E2E_JS)/package-lock.json
	npm ci --prefix $(E2E_JS) --no-audit --no-fund

# staticcheck runs at a pinned version through `go run pkg@version`, which
# fetches it through the module proxy on a fresh machine and, unlike a tool
# dependency, adds nothing to go.mod.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@$(GO) mod tidy -diff || { echo "go.mod or go.sum is not tidy: run go mod tidy"; exit 1; }
	$(GO) run $(STATICCHECK) ./...

# Every payload decoder's fuzz target, briefly (FUZZTIME each).
fuzz:
	@for f in $$($(GO) test -list 'Fuzz.*' ./socketadapter | grep '^Fuzz'); do \
		echo "fuzz $$f for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) ./socketadapter || exit 1; \
	done

BENCH_NODE := bench/node-server
BENCH_FLAGS ?=

# Our server against the Node.js socket.io baseline (load generator on this
# machine), plus the store and projection benchmarks; prints the table and
# rewrites the Performance section of README.md. BENCH_FLAGS go to
# bench/run (e.g. BENCH_FLAGS='-runs 2 -no-readme').
bench: build $(BENCH_NODE)/node_modules/.package-lock.json
	$(GO) run ./bench/run $(BENCH_FLAGS)

$(BENCH_NODE)/node_modules/.package-lock.json: $(BENCH_NODE)/package-lock.json
	npm ci --prefix $(BENCH_NODE) --no-audit --no-fund

clean:
	rm -rf bin
