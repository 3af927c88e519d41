# The engine's two commands: `make run` runs the main job end to end on the embedded defaults,
# `make test` runs every test against the real local PostgreSQL. `make bench` holds the long runs.

GO ?= go
BIN := bin/joinin
# Where tests create their databases, and where `make run` keeps the engine's own.
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/joinin?sslmode=disable
# How long `make test` may run before go test stops it.
TEST_TIMEOUT ?= 15m
BENCH_COUNT ?= 5

.PHONY: run test bench build vet fmt db clean

build:
	$(GO) build -o $(BIN) ./cmd/joinin

run: build db
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) demo

test: vet db
	$(GO) test -race -timeout $(TEST_TIMEOUT) ./...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo 'gofmt: files above need formatting'; exit 1; }
	$(GO) vet ./...

# Starts the local PostgreSQL if it is down; tests and the engine create their databases themselves.
db:
	@./scripts/ensure-postgres

# The Go benchmarks of the hot paths (with one, two and three engine processes on one merchant:
# events/s and conflict retries per batch), then a million card events through Kafka into the ledger
# (with PostgreSQL's COPY ceiling and the latency at half the rate), again on tables pre-filled
# with ten million earlier events,
# then a settlement cycle of ten million transfers closed in a database of its own, then a bank
# statement of a million entries imported and matched, then POST /v1/transfers driven over HTTP by
# 16 clients between 10,000 accounts and onto one hot account (transfers/s and p99 per phase),
# then a million transfers over 30 days verified in full and from the newest day's checkpoint, then
# a city day of 100,000 cards through every door, compared with its model (lost, applied_twice and
# mismatched must be 0), then a day of 1,000,000 metro taps over HTTP batches and another over Kafka
# (taps/s of each door), then a city of 1,000,000 cards consumed by `joinin serve` in a process of
# its own (the engine's peak RSS apart from the generator's and the broker's).
bench: build db
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -timeout 90m ./...
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest --events 1000000 --cards 100000 --log-level warn
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest --events 1000000 --cards 100000 --log-level warn --prefill-events 10000000 --verify=false
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest-settle --transfers 10000000 --cards 100000 --merchants 1000 --banks 20 --log-level warn
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest-reconcile --entries 1000000 --log-level warn
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest-transfers --accounts 10000 --clients 16 --duration 20s --log-level warn
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest-verify --transfers 1000000 --days 30 --accounts 10000 --log-level warn
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest-cityday --cards 100000 --merchants 1000 --purchases 300000 --authorizations 50000 --medical-bills 20000 --log-level warn
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest-taps --cards 100000 --log-level warn
	DATABASE_URL='$(DATABASE_URL)' ./$(BIN) loadtest --events 2100000 --cards 1000000 --engine-process --ceiling=false --latency 0 --verify=false --log-level warn

clean:
	rm -rf bin
