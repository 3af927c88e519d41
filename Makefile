# The engine's two commands: `make run` runs the main job end to end on the embedded defaults,
# `make test` runs every test against the real local PostgreSQL. `make bench` holds the long runs.

GO ?= go
# Recipes run in bash so that a pipeline into tee fails when its run fails.
SHELL := /bin/bash
BIN := bin/joinin
# Where tests create their databases, and where `make run` keeps the engine's own.
DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/joinin?sslmode=disable
# How long one package's tests may run before go test stops them: the store's take about five
# minutes on a quiet two-core machine and up to four times that on a busy one.
TEST_TIMEOUT ?= 30m
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

# On a PostgreSQL of the benchmarks' own, sized as docs/deploying.md recommends (below): the Go benchmarks of the hot paths (with one, two and three engine processes on one merchant:
# events/s and conflict retries per batch), then a million card events through Kafka into the ledger
# (with PostgreSQL's COPY ceiling and the latency at half the rate), again with every purchase
# crediting one merchant's account, again on tables pre-filled with ten million earlier events,
# then a settlement cycle of ten million transfers closed in a database of its own, then a bank
# statement of a million entries imported and matched, then POST /v1/transfers driven over HTTP by
# 16 clients between 10,000 accounts and onto one hot account (transfers/s and p99 per phase), with
# one transfer per request and again with ten,
# then POST /v1/authorizations over HTTP (open loop at 2,000/s with p50/p99/p999, a rate sweep to the
# highest rate with p99 under 10 ms, 16 closed-loop clients), on empty tables and again on tables
# pre-filled with ten million earlier authorizations (their prefill takes tens of minutes here),
# then a million transfers over 30 days verified in full and from the newest day's checkpoint, then
# a city day of 100,000 cards through every door, compared with its model (lost, applied_twice and
# mismatched must be 0), then a day of 1,000,000 metro taps over HTTP batches and another over Kafka
# (taps/s of each door), then a city of 1,000,000 cards consumed by `joinin serve` in a process of
# its own (the engine's peak RSS apart from the generator's and the broker's). Each run's output is kept in $(BENCH_DIR); the last step prints one table
# of every figure with its goal, and the Go benchmarks' medians.
BENCH_DIR ?= bin/bench
# The server the benchmarks measure: by default one of their own (scripts/bench-postgres, in
# BENCH_PG_DIR on BENCH_PG_PORT), configured as docs/deploying.md recommends, started first and
# stopped last. BENCH_DATABASE_URL names another server instead, for example the machine's own
# (BENCH_DATABASE_URL='$(DATABASE_URL)'), which is then left as it is.
BENCH_PG_DIR ?= bin/bench-postgres
BENCH_PG_PORT ?= 5544
BENCH_DATABASE_URL ?=
BENCH_ENV = DATABASE_URL="$$(cat $(BENCH_DIR)/database-url)"
bench: build db
	@rm -rf $(BENCH_DIR) && mkdir -p $(BENCH_DIR)
	@if [ -n '$(BENCH_DATABASE_URL)' ]; then echo '$(BENCH_DATABASE_URL)' > $(BENCH_DIR)/database-url; \
	else ./scripts/bench-postgres stop $(BENCH_PG_DIR) && rm -rf $(BENCH_PG_DIR) && \
	./scripts/bench-postgres start $(BENCH_PG_DIR) $(BENCH_PG_PORT) > $(BENCH_DIR)/database-url; fi
	set -o pipefail; $(BENCH_ENV) $(GO) test -run '^$$' -bench . -benchmem -count $(BENCH_COUNT) -timeout 90m ./... | tee $(BENCH_DIR)/go-bench.txt
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest --events 1000000 --cards 100000 --log-level warn | tee $(BENCH_DIR)/loadtest.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest --events 1000000 --cards 100000 --merchants 1 --ceiling=false --latency 0 --log-level warn | tee $(BENCH_DIR)/loadtest-hot.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest --events 1000000 --cards 100000 --log-level warn --prefill-events 10000000 --verify=false | tee $(BENCH_DIR)/loadtest-prefilled.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-settle --transfers 10000000 --cards 100000 --merchants 1000 --banks 20 --log-level warn | tee $(BENCH_DIR)/loadtest-settle.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-reconcile --entries 1000000 --log-level warn | tee $(BENCH_DIR)/loadtest-reconcile.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-transfers --accounts 10000 --clients 16 --duration 20s --log-level warn | tee $(BENCH_DIR)/loadtest-transfers.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-transfers --accounts 10000 --clients 16 --duration 20s --per-request 10 --log-level warn | tee $(BENCH_DIR)/loadtest-transfers-batched.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-auth --rate 2000 --clients 16 --log-level warn | tee $(BENCH_DIR)/loadtest-auth.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-auth --rate 2000 --clients 16 --log-level warn --prefill-requests 10000000 | tee $(BENCH_DIR)/loadtest-auth-prefilled.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-verify --transfers 1000000 --days 30 --accounts 10000 --log-level warn | tee $(BENCH_DIR)/loadtest-verify.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-cityday --cards 100000 --merchants 1000 --purchases 300000 --authorizations 50000 --medical-bills 20000 --log-level warn | tee $(BENCH_DIR)/loadtest-cityday.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest-taps --cards 100000 --log-level warn | tee $(BENCH_DIR)/loadtest-taps.json
	set -o pipefail; $(BENCH_ENV) ./$(BIN) loadtest --events 2100000 --cards 1000000 --engine-process --ceiling=false --latency 0 --verify=false --log-level warn | tee $(BENCH_DIR)/loadtest-million-cards.json
	@./$(BIN) bench-report $(BENCH_DIR)
	@if [ -z '$(BENCH_DATABASE_URL)' ]; then ./scripts/bench-postgres stop $(BENCH_PG_DIR); fi

clean:
	rm -rf bin
