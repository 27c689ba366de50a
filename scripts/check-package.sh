#!/usr/bin/env bash
# Checks the packages as a user would get them: the crate docs build with
# no warning (broken intra-doc links included); `pagepool` packages with
# what a user needs and nothing else, and passes `cargo publish --dry-run`
# (which builds the packaged crate on its own); the B+-tree and the CLI
# package too (the CLI is meant for `cargo install pagepool-cli`).
set -euo pipefail
cd "$(dirname "$0")/.."

RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p pagepool --features metrics
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p pagepool-btree

list=$(cargo package -p pagepool --list --allow-dirty 2>/dev/null)
fail() { echo "check-package: $*" >&2; exit 1; }
for required in Cargo.toml README.md LICENSE-MIT LICENSE-APACHE src/lib.rs \
    docs/design.md docs/access-modes.md docs/rules-of-use.md; do
    grep -qx "$required" <<<"$list" || fail "the package lacks $required"
done
# Only sources, the three guide pages, the README, licenses, manifests.
unexpected=$(grep -Evx 'src/.*\.rs|docs/(design|access-modes|rules-of-use)\.md|README\.md|LICENSE-(MIT|APACHE)|Cargo\.toml(\.orig)?|Cargo\.lock|\.cargo_vcs_info\.json' <<<"$list" || true)
[ -z "$unexpected" ] || fail "unexpected files in the package: $unexpected"

out=$(cargo publish --dry-run -p pagepool --allow-dirty 2>&1) || { echo "$out"; fail "publish --dry-run failed"; }
size=$(grep -o 'Packaged [0-9]* files, [0-9.]*[KM]iB' <<<"$out" || true)
echo "check-package: pagepool: $size"
grep -q 'Packaged [0-9]* files, [0-9.]*KiB' <<<"$out" || fail "the package is not under 1 MiB: $size"

# The B+-tree and the CLI depend on the unpublished pool: packaged against
# the workspace's copy, without the (long) verification build.
cargo package -p pagepool -p pagepool-btree -p pagepool-cli --allow-dirty --no-verify 2>&1 \
    | grep -E '^ *Packaged'
echo "check-package: ok"
