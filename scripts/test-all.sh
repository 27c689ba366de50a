#!/usr/bin/env bash
# Runs every test of the workspace: unit, integration, doc (compile-fail
# included) and CLI tests in debug (assertions on), then the stress suite
# again in release (different timing, more interleavings).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo test --workspace
cargo test --release --test stress
