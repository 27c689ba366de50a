#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ for a given time each, then prints
# each target's total executions and executions per second.
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS] [-- LIBFUZZER_ARGS...]
#
# TARGET is ops, faults, page_load, heap_page or btree_ops (default: all,
# one after the other); SECONDS is the time per target (default 60). New inputs the fuzzer
# finds go to fuzz/work/TARGET (not committed); the committed seed corpus
# fuzz/corpus/TARGET is read, never written. A failing input is saved under
# fuzz/artifacts/TARGET/; replay it with
#   (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET artifacts/TARGET/crash-...)
#
# cargo-fuzz is installed if missing. It builds with nightly-only flags
# (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them, so no nightly toolchain is needed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

all_targets=(ops faults page_load heap_page btree_ops)
target=${1:-all}
seconds=${2:-60}
shift $(($# < 2 ? $# : 2))
[[ ${1:-} == "--" ]] && shift

if [[ $target == all ]]; then
    targets=("${all_targets[@]}")
elif [[ " ${all_targets[*]} " == *" $target "* ]]; then
    targets=("$target")
else
    echo "unknown target '$target'; expected one of: all ${all_targets[*]}" >&2
    exit 2
fi
if ! [[ $seconds =~ ^[0-9]+$ ]]; then
    echo "SECONDS must be a whole number, not '$seconds'" >&2
    exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz ..." >&2
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

cargo fuzz build
summary=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "work/$t"
    log="work/$t.log"
    echo "=== fuzzing $t for ${seconds}s (log: fuzz/$log)" >&2
    # -timeout: an input running longer than 10 s is a hang (a latch never
    # released, a lost wake-up) and is reported as a failure.
    status=ok
    cargo fuzz run "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "$@" 2>&1 \
        | tee "$log" || { status="FAILED (input saved under fuzz/artifacts/$t/)"; failed=1; }
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    summary+=("$(printf '%-10s %12s executions  %8s exec/s  in %ss  %s' \
        "$t" "${runs:-?}" "${rate:-?}" "$seconds" "$status")")
done
echo
printf '%s\n' "${summary[@]}"
exit "$failed"
