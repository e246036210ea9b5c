# rkt — the one entry point. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO        ?= cargo
PREFIX       ?= /usr/local
TEST_THREADS ?= 2
export CARGO_TERM_COLOR ?= never
# Debian packages the build, the tests and the demo need.
DEB_PACKAGES := build-essential pkg-config libseccomp-dev protobuf-compiler \
	docker-registry skopeo busybox-static containernetworking-plugins \
	iptables iproute2 apache2-utils curl openssl jq ca-certificates util-linux \
	xz-utils zstd attr python3 gnupg systemd-container debootstrap umoci
BENCH_PACKAGES := podman crun runc umoci hyperfine systemd-container uidmap catatonit time bc containerd

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# cargo tools `make lint` runs (from crates.io, like the crates of the build)
CARGO_MACHETE_VERSION := 0.9.2

.PHONY: deps
deps: ## install the Debian packages and cargo tools for build, lint, tests and demo (idempotent)
	@scripts/apt-install.sh $(DEB_PACKAGES)
	@$(CARGO) machete --version 2>/dev/null | grep -q '$(CARGO_MACHETE_VERSION)' || \
		$(CARGO) install cargo-machete --locked --version $(CARGO_MACHETE_VERSION)

.PHONY: bench-deps
bench-deps: deps ## install and configure the peer runtimes for `make bench`
	@scripts/apt-install.sh $(BENCH_PACKAGES)
	@scripts/bench-peers-setup.sh

# rkt-monitor is no_std and needs panic=abort, which the dev profile does not set for the rest
MONITOR_DEBUG   := $(CARGO) rustc -p stage1-monitor --bin rkt-monitor --features bin -- -C panic=abort
MONITOR_RELEASE := $(CARGO) build --release -p stage1-monitor --bin rkt-monitor --features bin

# rkt and rkt-stage1 are linked static-pie (glibc and libseccomp inside, still position
# independent): an exec of either skips the dynamic loader, ≈ 1 ms apiece on `rkt run`'s path
# (docs/performance.md). `cargo build` links them dynamically; these relink them in place.
STATIC         := -- -C target-feature=+crt-static
STATIC_DEBUG   := $(CARGO) rustc -p rkt-cli --bin rkt $(STATIC) && \
	$(CARGO) rustc -p stage1 --bin rkt-stage1 $(STATIC)
STATIC_RELEASE := $(CARGO) rustc --release -p rkt-cli --bin rkt $(STATIC) && \
	$(CARGO) rustc --release -p stage1 --bin rkt-stage1 $(STATIC)

.PHONY: build
build: ## build rkt, rkt-stage1, rkt-monitor and the test tools (debug)
	$(CARGO) build --workspace --bins
	$(MONITOR_DEBUG)
	$(STATIC_DEBUG)

.PHONY: release
release: ## build optimised rkt, rkt-stage1, rkt-monitor and rkt-cri
	$(CARGO) build --release -p rkt-cli -p stage1 -p rkt-cri
	$(MONITOR_RELEASE)
	$(STATIC_RELEASE)

.PHONY: install
install: release ## install rkt, rkt-stage1, rkt-monitor, rkt-cri and rkt-systemd-generator into $(PREFIX)/bin (+ the generator link)
	install -D -m 0755 target/release/rkt $(DESTDIR)$(PREFIX)/bin/rkt
	install -D -m 0755 target/release/rkt-stage1 $(DESTDIR)$(PREFIX)/bin/rkt-stage1
	install -D -m 0755 target/release/rkt-monitor $(DESTDIR)$(PREFIX)/bin/rkt-monitor
	install -D -m 0755 target/release/rkt-cri $(DESTDIR)$(PREFIX)/bin/rkt-cri
	@# the systemd generator finds rkt beside its real path (docs/systemd.md)
	install -D -m 0755 target/release/rkt-systemd-generator $(DESTDIR)$(PREFIX)/bin/rkt-systemd-generator
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system-generators
	ln -sf $(PREFIX)/bin/rkt-systemd-generator $(DESTDIR)$(PREFIX)/lib/systemd/system-generators/rkt-systemd-generator

.PHONY: demo
demo: deps build ## build, make a local image, serve it from a local registry, fetch it and run a two-app pod
	@scripts/demo.sh

.PHONY: test
test: deps lint build test-unit test-integration test-critest ## everything CI runs: lint, build, unit and integration tests, CRI conformance

.PHONY: test-unit
test-unit: ## unit tests of every crate
	$(CARGO) test --workspace --lib --bins

.PHONY: test-integration
test-integration: build ## integration tests: real binaries as root, local registry, pods
	$(CARGO) test --workspace --exclude rkt-tests --test '*' -- --test-threads=$(TEST_THREADS)
	@# the registry client against real registries: ignored by a plain `cargo test` (it needs
	@# docker-registry, skopeo, openssl, htpasswd), run here; the throughput one is a benchmark
	$(CARGO) test -p image-store --lib registry::live_tests -- --ignored --test-threads=1 \
		--skip blob_stream_throughput
	@# stage1's own tests relinked rkt-stage1 the cargo way: the pods run by the binaries that ship
	$(STATIC_DEBUG)
	$(CARGO) test -p rkt-tests --test '*' -- --test-threads=$(TEST_THREADS)

.PHONY: soak
soak: build ## long concurrency soak: 20 parallel pods with gc and image gc loops for 5 minutes
	RKT_SOAK_SECS=$${RKT_SOAK_SECS:-300} $(CARGO) test -p rkt-tests --test lifecycle parallel_runs -- --nocapture

.PHONY: chaos
chaos: build ## kill -9 of run/prepare/fetch/gc at random moments x100 each, one gc, invariants (docs/reliability.md)
	RKT_CHAOS_ROUNDS=$${RKT_CHAOS_ROUNDS:-100} $(CARGO) test -p rkt-tests --test chaos -- --nocapture

FUZZ_SECS ?= 60
FUZZ_TARGETS := reference manifest image_config aci_manifest layer_tar aci_tar cni_result \
	seccomp_flag auth_challenge signature_claim openpgp cosign_key discovery_page policy \
	spdy_frames ws_frame
.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZ_SECS seconds (stable toolchain, no sanitizer; docs/security.md)
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	$(CARGO) fuzz build --fuzz-dir fuzz/libfuzzer -s none
	@for t in $(FUZZ_TARGETS); do mkdir -p fuzz/work/$$t; echo "== $$t"; \
		($(CARGO) fuzz run --fuzz-dir fuzz/libfuzzer -s none $$t fuzz/work/$$t fuzz/corpus/$$t -- \
		-max_total_time=$(FUZZ_SECS) -max_len=65536 -rss_limit_mb=2048 2>&1 | tail -2) || exit 1; done

.PHONY: critest
critest: build ## CRI conformance (critest) against rkt-cri on a scratch dir; CRITEST_FOCUS=regex (docs/cri.md)
	@scripts/critest.sh

.PHONY: test-critest
test-critest: build ## critest in `make test`: must pass every spec that can run here (docs/cri.md)
	@CRITEST_MIN_PASSED=107 scripts/critest.sh

.PHONY: bench
bench: ## side-by-side benchmarks against podman/crun/runc (run `make bench-deps` first)
	@scripts/bench.sh

.PHONY: lint
lint: ## rustfmt check, clippy with warnings denied, no unused dependency (cargo machete)
	$(CARGO) fmt --all -- --check
	@$(CARGO) machete --version >/dev/null 2>&1 || { echo "cargo-machete missing: run 'make deps'" >&2; exit 1; }
	$(CARGO) machete
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p stage1-monitor --bin rkt-monitor --features bin -- -C panic=abort -D warnings

.PHONY: fmt
fmt: ## format the code
	$(CARGO) fmt --all

.PHONY: docs
docs: build ## man pages and shell completions into target/docs
	target/debug/rkt docs target/docs
	$(CARGO) doc --workspace --no-deps

.PHONY: clean
clean: ## remove build outputs
	$(CARGO) clean
