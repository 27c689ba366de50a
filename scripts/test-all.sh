#!/usr/bin/env bash
# Runs every test of the project (see the README's "Testing" table):
# unit, integration, doc (compile-fail included) and CLI tests; the stress
# suite again in release; the loom models; the shuttle suites; the planted
# bugs, each of which must be caught.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step is stamped with the seconds since the script began, so that a
# CI log shows where its time went.
started_at=$(date +%s)
step() { printf '\n==> %s (at %d s)\n' "$*" "$(( $(date +%s) - started_at ))"; }

step "workspace tests (debug)"
# cargo-nextest (on every machine of this project's kind) runs the test
# binaries side by side, one process per test; doc tests (compile-fail
# examples among them) are not nextest's, so cargo runs them after.
# Without nextest, plain `cargo test` runs the same tests one binary at a
# time.
if cargo nextest --version > /dev/null 2>&1; then
    cargo nextest run --workspace
    cargo test --workspace --doc
else
    cargo test --workspace
fi

step "the metrics feature"
cargo test --features metrics --test metrics

step "the packages and the crate docs"
bash scripts/check-package.sh

step "stress tests (release)"
cargo test --release --test stress

step "loom models (each at its own preemption bound)"
RUSTFLAGS="--cfg loom --cfg crossbeam_loom" \
    CARGO_TARGET_DIR=target/loom cargo test -p loom-tests --release -- --nocapture

step "shuttle suites"
cargo test --release --features shuttle,internals --test shuttle_pool
cargo test --release --features shuttle,internals --test shuttle_olc
cargo test --release --features shuttle,internals --test shuttle_io
cargo test --release --features shuttle,internals --test shuttle_writeback
cargo test -p pagepool-btree --release --features shuttle --test shuttle_btree

step "planted bugs"
bash scripts/mutations.sh

step "fuzz targets: build and replay the committed corpus"
bash scripts/fuzz-replay.sh

step "done"
