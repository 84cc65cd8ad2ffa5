# presave. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
N ?=
export DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
export REDIS_URL ?= redis://127.0.0.1:6379/0
# The browser tests' screenshots (one folder per test), kept after a run.
export TEST_ARTIFACTS ?= $(CURDIR)/.artifacts

.PHONY: help services build run test lint migrate bench chaos demo clean rotate-keys preflight

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

services: ## make PostgreSQL and Redis available (installs/starts them if missing)
	@./scripts/services.sh

build: ## build every binary into bin/
	$(GO) build -o bin/ ./cmd/...

run: build ## run the fake provider, the API and a worker locally (dev mode)
	@./scripts/services.sh db
	@./scripts/run.sh

test: ## run every test against real PostgreSQL and Redis, then the store, the worker and a chaos scenario through PgBouncer
	@./scripts/services.sh
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 20m ./...
	@if url=$$(./scripts/services.sh pgbouncer); then \
	  echo "through PgBouncer (transaction pooling): $$url"; \
	  PGBOUNCER_URL=$$url $(GO) test -race -count=1 -timeout 10m ./internal/store/... ./internal/jobs && \
	  PGBOUNCER_URL=$$url $(GO) test -race -count=1 -timeout 10m -run '^(TestWorkerKilled|TestBinariesStartAndStop)$$' ./internal/chaos; \
	else echo "PgBouncer unavailable: the PgBouncer runs are skipped"; fi

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt: $$out"; exit 1; fi
	$(GO) vet ./...

migrate: ## apply migrations to DATABASE_URL
	PRESAVE_DEV=$${PRESAVE_DEV:-1} $(GO) run ./cmd/worker migrate

rotate-keys: ## re-seal every token under the first key of TOKEN_KEYS
	$(GO) run ./cmd/worker rotate-keys

preflight: ## check this environment's configuration against reality (exit 1 on a failure)
	@$(GO) run ./cmd/worker preflight

bench: ## release-day benchmark (N=2000 for a small run, HISTORY=1000000 to seed history); writes bench/results.json
	@./scripts/services.sh db
	@if [ -d cmd/bench ]; then $(GO) run ./cmd/bench $(if $(N),-n $(N)) $(if $(HISTORY),-history $(HISTORY)); else echo "no benchmark yet"; fi

demo: ## the first thing to run: 1,000 fans pre-save a release due in 20 s (FANS=, DELAY=, DEMO_EXIT=1)
	@./scripts/services.sh db
	$(GO) run ./cmd/demo $(if $(FANS),-fans $(FANS)) $(if $(DELAY),-delay $(DELAY))

chaos: ## reliability suite: real processes, workers killed, Redis/PostgreSQL restarted, provider faults (CHAOS_FANS=300)
	@./scripts/services.sh db
	CHAOS_FANS=$(or $(CHAOS_FANS),300) $(GO) test -count=1 -v -timeout 30m ./internal/chaos 2>&1 | grep -Ev '^\s+time=|^=== (RUN|PAUSE|CONT)'; exit $${PIPESTATUS[0]}

clean: ## remove build output and project-local service data
	rm -rf bin .local
