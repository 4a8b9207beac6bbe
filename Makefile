# The two commands: `make run` serves Ironhand on its embedded defaults, `make test` runs
# every test (SQLite, PostgreSQL and Redis). See README.md.

SHELL := /bin/bash
# Node.js 20.19+: scripts/install-node.sh (run by install-web-deps.sh and install-mcp-servers.sh)
# installs one into .tools/node/ when the machine's is missing or too old; every recipe finds
# it there first.
ifeq ($(filter $(CURDIR)/.tools/node/bin,$(subst :, ,$(PATH))),)
export PATH := $(CURDIR)/.tools/node/bin:$(PATH)
endif
export TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
export TEST_REDIS_URL ?= redis://127.0.0.1:6379

.PHONY: run build test api-fuzz web web-test bench fmt lint clean-test-databases sandbox-deps browser-deps mcp-deps
.PHONY: images sandbox-image docker-deps deploy-check compose-smoke

## Build the web app and the server (release), then serve both on http://localhost:8000
## with SQLite in ./data.
run: sandbox-deps web
	cargo run --release --locked -p ironhand-server --bin ironhand -- serve

build: web
	cargo build --release --locked -p ironhand-server --bin ironhand

## Every test: unit tests, the storage conformance suite on SQLite and PostgreSQL, the
## HTTP suite against the real server on SQLite and on PostgreSQL + Redis, the API fuzzing
## against the OpenAPI document, then the web app's type check, unit tests and browser
## stories (Chromium against the built binary), and the deploy files' validity.
test: sandbox-deps browser-deps mcp-deps clean-test-databases web
	@# The docker provider's stories need a Docker Engine (installed and started here);
	@# where none can start (exit 2), they are skipped with a message.
	@rc=0; scripts/install-docker.sh || rc=$$?; \
	if [ $$rc -eq 2 ]; then echo "make test: no Docker Engine can start here: the docker provider's stories are skipped"; export IRONHAND_SKIP_DOCKER=1; \
	elif [ $$rc -ne 0 ]; then exit $$rc; fi; \
	if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --locked --no-fail-fast; \
	else \
		cargo test --workspace --locked --no-fail-fast; \
	fi
	$(MAKE) api-fuzz
	$(MAKE) web-test
	$(MAKE) deploy-check

## The real server (debug) against its own OpenAPI document, on SQLite and on PostgreSQL +
## Redis: schemathesis (pinned, installed into .venv-fuzz/) sends a bounded, seeded set of
## valid and invalid requests to every operation; any 5xx, undocumented answer or accepted
## invalid request fails. See scripts/api-fuzz.sh.
api-fuzz: sandbox-deps mcp-deps web
	@scripts/api-fuzz.sh

## The web app alone: type check, unit tests, then the browser stories against the debug
## binaries (built here if needed) and the fake model.
web-test: web browser-deps
	cd web && npm run type-check && npm run test
	cargo build --locked -p ironhand-server -p ironhand-fakes --bins
	cd web && npm run e2e

## The web app (web/dist, embedded into the server binary): npm ci when the lock file
## changed, vite build when a source changed.
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/vite.config.ts web/tsconfig.json web/package.json
web: web/dist/index.html

web/node_modules/.package-lock.json: web/package-lock.json
	@scripts/install-web-deps.sh

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && npm run build
	@touch $@
	@# the server's build script switches from its placeholder page to web/dist
	@touch crates/server/build.rs

## Load and latency on SQLite and on PostgreSQL + Redis, agent runs against the fake model
## included (their sandboxes need bubblewrap); writes docs/benchmarks.md.
bench: sandbox-deps web
	cargo build --release --locked -p ironhand-server -p ironhand-bench -p ironhand-fakes
	TEST_DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
	TEST_REDIS_URL=$${TEST_REDIS_URL:-redis://127.0.0.1:6379} \
	target/release/ironhand-bench --server target/release/ironhand --fake-llm target/release/fake-llm --bare-hello target/release/bare-hello --scenarios bench/scenarios --out docs/benchmarks.md

## The browser stories need Chromium (Debian's package; playwright-core drives it).
browser-deps:
	@scripts/install-browser-deps.sh

## The MCP client's tests talk to real MCP servers (npm's server-everything and
## server-filesystem, a Python server on PyPI's `mcp`): install them into mcp-servers/.
mcp-deps:
	@scripts/install-mcp-servers.sh

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

## Container images, built from Debian packages with no registry pull (docs/deployment.md):
## local/debian:bookworm (mmdebstrap + docker import, once), ironhand:<version> (the server,
## with the release binary and web app of `make build`), ironhand-sandbox:<version>,
## ironhand-postgres:15 and ironhand-redis:7. A second run with nothing changed is cached.
images: build docker-deps
	cargo build --release --locked -p ironhand-fakes --bin fake-llm
	@scripts/build-images.sh all

## The sandbox image of the Docker provider: ironhand-sandbox:<version>.
sandbox-image: build docker-deps
	@scripts/build-images.sh sandbox

## Docker Engine (Debian's docker.io, started without systemd when none answers),
## docker-compose 1.29 and mmdebstrap.
docker-deps:
	@scripts/install-docker.sh

## The deploy files: deploy/compose.yaml against docker-compose (and `docker compose` when
## present), the example TOML against the server's own validation, the systemd unit, the
## scripts' syntax, and the tools layer the server and sandbox images share.
deploy-check:
	@command -v docker-compose >/dev/null 2>&1 || scripts/install-docker.sh
	docker-compose -f deploy/compose.yaml config -q
	docker-compose --env-file deploy/.env.example -f deploy/compose.yaml config -q
	docker-compose --env-file deploy/.env.example -f deploy/compose.yaml -f deploy/compose.smoke.yaml config -q
	@if docker compose version >/dev/null 2>&1; then \
		docker compose -f deploy/compose.yaml config -q; fi
	@for f in scripts/install-docker.sh scripts/build-images.sh scripts/compose-smoke.sh deploy/postgres/entrypoint.sh; do bash -n $$f; done
	@for f in deploy/entrypoint.sh deploy/redis/entrypoint.sh; do sh -n $$f; done
	@diff <(sed -n '/^RUN apt-get update/,/^$$/p' deploy/Dockerfile) <(sed -n '/^RUN apt-get update/,/^$$/p' deploy/sandbox/Dockerfile) >/dev/null || \
		{ echo "deploy-check: the first RUN of deploy/Dockerfile and deploy/sandbox/Dockerfile differ (they are meant to share one layer)"; exit 1; }
	@t=$${CARGO_TARGET_DIR:-target}; bin=$$(ls -t $$t/release/ironhand $$t/debug/ironhand 2>/dev/null | head -n1); \
	if [ -n "$$bin" ]; then \
		IRONHAND__AUTH__JWT_SECRET=deploy-check-jwt-secret-0123456789abcdef \
		IRONHAND__FILES__SIGNING_KEY=deploy-check-signing-key-0123456789abcdef \
		IRONHAND__MCP__SECRETS_KEY=deploy-check-mcp-key-0123456789abcdef01 \
		$$bin --config deploy/ironhand.example.toml check-config >/dev/null && \
		echo "deploy/ironhand.example.toml: valid ($$bin check-config)"; \
	else echo "deploy-check: no ironhand binary built; skipping check-config of deploy/ironhand.example.toml"; fi
	@if command -v systemd-analyze >/dev/null 2>&1; then \
		out=$$(systemd-analyze verify deploy/ironhand.service 2>&1 | grep -v 'is not executable' || true); \
		if [ -n "$$out" ]; then echo "$$out"; exit 1; fi; \
		echo "deploy/ironhand.service: valid (systemd-analyze verify; the binary need not be installed)"; fi
	@echo "deploy-check: deploy/compose.yaml is valid"

## Brings deploy/compose.yaml up from the local images, runs one task through the fake model
## on a worker, and tears it down (skipped with a message where no Docker Engine can start).
compose-smoke: web
	@scripts/compose-smoke.sh
