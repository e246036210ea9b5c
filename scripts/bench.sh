#!/bin/bash
# bench.sh — `make bench`: release build, then rkt-bench (tests/src/bin/rkt-bench.rs) measures
# rkt against podman, crun, runc and the floors, interleaved, in one run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release -p rkt-tests --bins
make --no-print-directory release
for c in podman crun runc skopeo docker-registry; do
  command -v "$c" >/dev/null || echo "note: $c missing (run 'make bench-deps'); its rows will say n/a" >&2
done
RKT_BIN_DIR=${RKT_BIN_DIR:-$ROOT/target/release} exec "$ROOT/target/release/rkt-bench"
