# The two commands: `make run` serves Ironhand on its embedded defaults, `make test` runs
# every test (SQLite, PostgreSQL and Redis). See README.md.

SHELL := /bin/bash
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
export TEST_REDIS_URL ?= redis://127.0.0.1:6379

.PHONY: run build test bench fmt lint clean-test-databases sandbox-deps

## Build (release) and serve on http://localhost:8000 with SQLite in ./data.
run: sandbox-deps
	cargo run --release --locked -p ironhand-server --bin ironhand -- serve

build:
	cargo build --release --locked -p ironhand-server --bin ironhand

## Every test: unit tests, the storage conformance suite on SQLite and PostgreSQL, and the
## HTTP suite against the real server on SQLite and on PostgreSQL + Redis.
test: sandbox-deps clean-test-databases
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --locked --no-fail-fast; \
	else \
		cargo test --workspace --locked --no-fail-fast; \
	fi

## Load and latency on SQLite and on PostgreSQL + Redis, agent runs against the fake model
## included (their sandboxes need bubblewrap); writes docs/benchmarks.md.
bench: sandbox-deps
	cargo build --release --locked -p ironhand-server -p ironhand-bench -p ironhand-fakes
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	TEST_REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379} \
	target/release/ironhand-bench --server target/release/ironhand --fake-llm target/release/fake-llm --scenarios bench/scenarios --out docs/benchmarks.md

## The agent's sandbox needs bubblewrap; install it when missing (Debian packages).
sandbox-deps:
	@scripts/install-sandbox-deps.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

## Test databases are created per test; drop the ones earlier runs left behind.
clean-test-databases:
	@if command -v psql >/dev/null 2>&1; then \
		psql "$(TEST_DATABASE_URL)" -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'ironhand\_test\_%'" 2>/dev/null \
		| while read -r db; do psql "$(TEST_DATABASE_URL)" -qc "DROP DATABASE IF EXISTS \"$$db\"" >/dev/null 2>&1 || true; done; \
	fi
