GO ?= go

.PHONY: all build test test-versions check fmt vet demo bench bench-formats bench-cutover

all: build

build:
	$(GO) build -o bin/pghaul ./cmd/pghaul

# Two throwaway local clusters, sample data, plan, a live apply, cut-over,
# verify; everything removed at the end (also on Ctrl-C).
demo: build
	scripts/setup demo
	bin/pghaul demo

# pghaul against pg_dump | pg_restore, pgcopydb and a native subscription
# (SCALE=50 RUNS=5 make bench; TABLES=1000 adds a database of that many
# small tables, DATABASES=100 TABLES=20 that many databases of them,
# LARGE_OBJECTS=100000 a database of that many 1-10 KiB large objects);
# results in bench/results/. pgcopydb is the Debian package of that name.
bench:
	$(GO) run ./bench/harness -scale $(or $(SCALE),20) -runs $(or $(RUNS),3) -tables $(or $(TABLES),0) -databases $(or $(DATABASES),0) -large-objects $(or $(LARGE_OBJECTS),0)

# Text against binary COPY per type family (source and target backend CPU);
# results in bench/results/copy-formats.tsv.
bench-formats:
	$(GO) run ./bench/formats -rows $(or $(ROWS),1000000) -runs $(or $(RUNS),3)

# The cut-over under load: 3 databases replicating while pgbench writes
# 200 transactions/s, then stop: true; the freeze window of each database
# and committed transactions missing on the target, against the same
# cut-over without the freeze. Results in bench/results/cutover.tsv.
bench-cutover:
	$(GO) run ./bench/cutover -runs $(or $(RUNS),5) -databases $(or $(DATABASES),3) -rate $(or $(RATE),200)

# The test command CI runs: real PostgreSQL clusters, never a cached result.
test:
	scripts/setup test
	$(GO) test -count=1 -timeout 15m ./...

# Sources PostgreSQL 12, 13, 14 and targets 18, 16, 17 (npm server builds)
# against the installed one.
test-versions:
	scripts/cross-version

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...
	$(GO) vet -tags crashpoints ./apply

check: fmt vet test
