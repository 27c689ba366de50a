#!/usr/bin/env bash
# The hit path's A/B harness: two revisions of the library built into one
# binary (scripts/hit-ab/main.rs) and timed in alternating rounds over the
# same pages, so that a change to the hit path is measured side by side
# within seconds rather than across runs of the noisy host.
#
#   scripts/hit-ab.sh REV_A REV_B [RUNS]
#
# REV_A and REV_B are git revisions; WORKTREE stands for the working tree
# with its uncommitted changes. Each run prints the builds' median rates
# and the median and quartiles of the per-round ratio B / A. The builds,
# the harness and two 256 MiB data files live under target/hit-ab (or
# $HIT_AB_DIR, which must accept O_DIRECT: not tmpfs).
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
rev_a=$1
rev_b=$2
runs=${3:-3}
repo=$(git rev-parse --show-toplevel)
work=${HIT_AB_DIR:-$repo/target/hit-ab}

# Copies revision $1 of the library into $2, renumbered $3 so that Cargo
# links the two copies side by side.
copy_revision() {
    local rev=$1 dir=$2 version=$3
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ "$rev" = WORKTREE ]; then
        (cd "$repo" && git ls-files -co --exclude-standard -z | tar -cf - --null -T -) | tar -xmf - -C "$dir"
    else
        git -C "$repo" archive "$rev" | tar -xmf - -C "$dir"
    fi
    # (-m above: files get the time of the copy, so that Cargo rebuilds a
    # revision older than the build it last made in the same place.)
    # The package's own version line (the manifest's first `version =`).
    sed -i "0,/^version = .*/s//version = \"$version\"/" "$dir/Cargo.toml"
}

copy_revision "$rev_a" "$work/a" 0.1001.0
copy_revision "$rev_b" "$work/b" 0.1002.0
mkdir -p "$work/harness/src" "$work/data"
cp "$repo/scripts/hit-ab/main.rs" "$work/harness/src/main.rs"
cp "$repo/Cargo.lock" "$work/harness/Cargo.lock"
cat >"$work/harness/Cargo.toml" <<'TOML'
[package]
name = "hit-ab"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
pp_a = { package = "pagepool", path = "../a" }
pp_b = { package = "pagepool", path = "../b" }

# The workspace's release profile, as the bench is built.
[profile.release]
debug = 1

# Not a member of the repository's workspace.
[workspace]
TOML
(cd "$work/harness" && cargo build --release --quiet)
echo "A = $rev_a, B = $rev_b"
for _ in $(seq "$runs"); do
    # A lower niceness where allowed (nice warns and runs as is otherwise).
    nice -n -10 "$work/harness/target/release/hit-ab" "$work/data"
done
