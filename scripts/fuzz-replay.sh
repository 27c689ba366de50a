#!/usr/bin/env bash
# Builds every cargo-fuzz target of fuzz/ and replays the committed seed
# corpus (fuzz/corpus/TARGET) through it once: fails if any input panics,
# trips the address sanitizer or hangs. Also runs the fuzz harness's own
# tests. Installs cargo-fuzz if missing; works on the stable toolchain
# (RUSTC_BOOTSTRAP=1 lets it accept cargo-fuzz's -Zsanitizer flags).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

targets=(ops faults page_load heap_page btree_ops)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz ..." >&2
    cargo install cargo-fuzz --locked
fi

# The harness's tests (plain build, no sanitizer).
cargo test --quiet

export RUSTC_BOOTSTRAP=1
cargo fuzz build
for t in "${targets[@]}"; do
    echo "=== replaying fuzz/corpus/$t" >&2
    cargo fuzz run "$t" "corpus/$t" -- -runs=0 -timeout=10
done
echo "fuzz replay: ${targets[*]} ok" >&2
