# AuraOS realtime. `make run` and `make test` do all set-up on a fresh machine.
GO       ?= go
BIN      := bin/auraos
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can report
# its own deadline as a failure when a loaded machine starves the workers at the
# boundary (go.dev/issue/75804, fixed in Go 1.27); a count has no deadline.
FUZZTIME ?= 2000x

.PHONY: build run test test-summary lint bench fuzz screenshots clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/auraos

# `make run ADDR=:5031 DATA_DIR=/tmp/a` passes only the flags whose variable
# is given, so that AURAOS_* variables (AURAOS_ADDR=:5031 make run) and
# serve's defaults apply otherwise.
run: build
	./$(BIN) serve $(if $(ADDR),--addr $(ADDR)) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

E2E_JS := cmd/auraos/testdata/e2e
# The browser tests (headless Chromium through playwright-core) of /console
# and of the official Admin UI's page against /admin.
BROWSER_JS := cmd/auraos/testdata/browser

GO_TEST := $(GO) test -race -count=1 -timeout 12m ./...

# PostgreSQL tests run when AURAOS_TEST_POSTGRES_URL is set and skip otherwise;
# go test shows skips only with -v, so test-summary says it in one line, after
# the tests whether they passed or not. The end-to-end suite drives the real
# server with the official JavaScript socket.io-client, and the browser
# tests drive Debian's chromium, both installed here from the committed
# lockfiles.
test: $(E2E_JS)/node_modules/.package-lock.json $(BROWSER_JS)/node_modules/.package-lock.json
	$(GO) vet ./...
	@echo '$(GO_TEST)'; status=0; $(GO_TEST) || status=$$?; $(TEST_SUMMARY); exit $$status

TEST_SUMMARY = if [ -z "$$AURAOS_TEST_POSTGRES_URL" ]; then echo "make test: the PostgreSQL tests were skipped; set AURAOS_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run them"; fi

test-summary:
	@$(TEST_SUMMARY)

$(E2E_JS)/node_modules/.package-lock.json: $(E2E_JS)/package-lock.json
	npm ci --prefix $(E2E_JS) --no-audit --no-fund

$(BROWSER_JS)/node_modules/.package-lock.json: $(BROWSER_JS)/package-lock.json
	npm ci --prefix $(BROWSER_JS) --no-audit --no-fund

# The README's screenshots of /console and of the Admin UI, taken by the
# browser tests.
screenshots: $(BROWSER_JS)/node_modules/.package-lock.json
	AURAOS_TEST_SCREENSHOTS=$(CURDIR)/cmd/auraos/console/screenshots $(GO) test -count=1 -run 'TestConsole.*InBrowser' ./cmd/auraos

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
BENCH_JS := bench/jsload
BENCH_FLAGS ?=

# Our server against the Node.js socket.io baseline (load generator on this
# machine), plus the store and projection benchmarks; prints the table and
# rewrites the Performance section of README.md. BENCH_FLAGS go to
# bench/run (e.g. BENCH_FLAGS='-runs 2 -no-readme').
bench: build $(BENCH_NODE)/node_modules/.package-lock.json $(BENCH_JS)/node_modules/.package-lock.json
	$(GO) run ./bench/run $(BENCH_FLAGS)

# The Node.js reference server and the official-client load generator,
# each from its lockfile.
%/node_modules/.package-lock.json: %/package-lock.json
	npm ci --prefix $* --no-audit --no-fund

clean:
	rm -rf bin
