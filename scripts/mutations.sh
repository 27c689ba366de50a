#!/usr/bin/env bash
# Applies each planted bug in tests/mutations/*.patch to a scratch copy of
# the crate, runs every checker named on the patch's `caught-by:` line, and
# fails if any mutation survives one of them (the checker passes) or fails
# to build. Loom checkers run each model at its own preemption bound (the
# one CI uses), unless LOOM_MAX_PREEMPTIONS is set.
#
#   bash scripts/mutations.sh            # every mutation
#   bash scripts/mutations.sh skip-validation   # one, by name
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/mutants"
scratch="$work/crate"
mkdir -p "$work"
loom_flags="--cfg loom --cfg crossbeam_loom"

# A checker is a name, optionally with `:FILTER`, the test-name filter
# passed on (so a planted bug in the miss path need not run every model).
checker_command() {
    local filter=""
    if [[ "$1" == *:* ]]; then filter=" ${1#*:}"; fi
    echo "$(checker_base "${1%%:*}")$filter"
}

checker_base() {
    case "$1" in
        shuttle) echo "cargo test --release --features shuttle,internals --test shuttle_pool" ;;
        shuttle-olc) echo "cargo test --release --features shuttle,internals --test shuttle_olc" ;;
        shuttle-io) echo "cargo test --release --features shuttle,internals --test shuttle_io" ;;
        shuttle-writeback) echo "cargo test --release --features shuttle,internals --test shuttle_writeback" ;;
        writeback) echo "cargo test --test writeback" ;;
        crash-wal) echo "cargo test --release --test crash_wal" ;;
        engine) echo "cargo test --test engine" ;;
        async) echo "cargo test --test async_api" ;;
        olc) echo "cargo test --test olc" ;;
        lifecycle) echo "cargo test --test lifecycle" ;;
        btree-shuttle) echo "cargo test -p pagepool-btree --release --features shuttle --test shuttle_btree" ;;
        btree-model) echo "cargo test -p pagepool-btree --test model" ;;
        unit) echo "cargo test --lib" ;;
        metrics) echo "cargo test --features metrics --test metrics" ;;
        bench) echo "cargo test -p pagepool-cli --bin pagepool bench::driver" ;;
        liveness) echo "cargo test --test liveness" ;;
        pool) echo "cargo test --test pool" ;;
        stress) echo "cargo test --release --test stress" ;;
        durability) echo "cargo test --test durability" ;;
        loom-latch) echo "cargo test -p loom-tests --release --test latch" ;;
        loom-parking) echo "cargo test -p loom-tests --release --test parking" ;;
        loom-table) echo "cargo test -p loom-tests --release --test table" ;;
        loom-pool) echo "cargo test -p loom-tests --release --test pool" ;;
        loom-coupling) echo "cargo test -p loom-tests --release --test coupling" ;;
        loom-intents) echo "cargo test -p loom-tests --release --test intents" ;;
        loom-combining) echo "cargo test -p loom-tests --release --test combining" ;;
        *) echo "unknown checker $1" >&2; return 1 ;;
    esac
}

# Seeds a checker's target directory (`$2`) with what the main build
# already compiled (`target/$1`) so that the first mutation does not build
# every dependency again: artifacts and fingerprints, not the incremental
# caches nor the test executables.
# The scratch crate's own files are extracted with fresh times (below), so
# cargo rebuilds the workspace's crates from them whatever was copied.
seed() {
    local from="$root/target/$1" to="$2"
    if [ -d "$to" ] || [ ! -d "$from" ]; then return 0; fi
    mkdir -p "$to"
    (cd "$from" && find . -path ./incremental -prune -o -type f \
        ! \( -path './deps/*' ! -name '*.*' \) -print0 |
        tar --null -T - -cf - | tar -C "$to" -xf -)
}
seed debug "$work/target-std/debug"
seed release "$work/target-std/release"
seed loom/release "$work/target-loom/release"

if [ $# -gt 0 ] && [ ! -f "$root/tests/mutations/$1.patch" ]; then
    echo "no planted bug named $1" >&2
    exit 2
fi
# Each mutation changes a few lines of one crate: incremental release
# builds recompile only what they touch (dependencies are never
# incremental, so the seeded ones stay fresh).
incremental=(CARGO_PROFILE_RELEASE_INCREMENTAL=true)
survivors=()
for patch in "$root"/tests/mutations/*.patch; do
    name=$(basename "$patch" .patch)
    if [ $# -gt 0 ] && [ "$1" != "$name" ]; then continue; fi
    checkers=$(sed -n 's/^caught-by: //p' "$patch")
    rm -rf "$scratch" && mkdir -p "$scratch"
    # `-m`: every file gets the time of extraction, later than any artifact
    # of an earlier mutation, so nothing stale is reused (a file an earlier
    # patch changed comes back with its old time, which cargo would
    # otherwise take for "unchanged since that build").
    tar -C "$root" --exclude=./target --exclude=./.git --exclude=./fuzz -cf - . | tar -C "$scratch" -xmf -
    # A patch that no longer applies (the code it plants its bug in has
    # changed) is reported and counted, and the run goes on to the others.
    if ! patch -s -p1 -d "$scratch" < "$patch" > "$work/$name.patch.log" 2>&1; then
        echo "mutation $name: DID NOT APPLY (see $work/$name.patch.log; regenerate the patch)"
        survivors+=("$name")
        continue
    fi
    for checker in $checkers; do
        cmd=$(checker_command "$checker")
        log="$work/$name.$checker.log"
        started=$(date +%s)
        if [[ "$checker" == loom-* ]]; then
            env_vars=(RUSTFLAGS="$loom_flags" CARGO_TARGET_DIR="$work/target-loom" "${incremental[@]}")
        else
            env_vars=(CARGO_TARGET_DIR="$work/target-std" "${incremental[@]}")
        fi
        set +e
        (cd "$scratch" && env "${env_vars[@]}" timeout 900 $cmd) > "$log" 2>&1
        status=$?
        set -e
        elapsed=$(( $(date +%s) - started ))
        if grep -q '^error\[E' "$log"; then
            echo "mutation $name: DID NOT BUILD (see $log)"
            survivors+=("$name")
        elif [ $status -eq 0 ]; then
            echo "mutation $name: SURVIVED $checker (${elapsed}s)"
            survivors+=("$name")
        elif [ $status -eq 124 ]; then
            echo "mutation $name: $checker TIMED OUT (${elapsed}s; a hang is not a catch)"
            survivors+=("$name")
        else
            reason=$(grep -m1 -E 'panicked at|deadlock|Causality|validated a torn|broken read|maximum number of branches' "$log" | cut -c1-140 || true)
            echo "mutation $name: caught by $checker in ${elapsed}s: $reason"
        fi
    done
done
if [ ${#survivors[@]} -gt 0 ]; then
    echo "surviving mutations: ${survivors[*]}"
    exit 1
fi
echo "every mutation was caught"
