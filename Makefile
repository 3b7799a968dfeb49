# AuraOS realtime. `make run` and `make test` do all set-up on a fresh machine.
GO       ?= go
BIN      := bin/auraos
ADDR     ?= :5000
DATA_DIR ?= ./data
BENCHTIME ?= 3s

.PHONY: build run test lint bench clean

build:
	$(GO) build -o $(BIN) ./cmd/auraos

run: build
	./$(BIN) serve --addr $(ADDR) --data-dir $(DATA_DIR)

# PostgreSQL tests run when AURAOS_TEST_POSTGRES_URL is set and skip otherwise.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 10m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) ./eventstore/...

clean:
	rm -rf bin
