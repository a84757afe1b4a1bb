#!/usr/bin/env bash
# Times `bundle verify` of one bundle, run again and again with nothing
# changed (the sandbox image and the preinstalled layer are cached after the
# first run). Needs Docker and the test image (bash .ci/run makes it); the
# bundle's wheels come from the real index. A benchmark, not a test. Usage:
#   bench/verify-again.sh [RUNS] [ITEM...]       (default: 5 sqlite-utils)
set -euo pipefail
runs=${1:-5}; shift || true
items=("$@"); [[ ${#items[@]} -eq 0 ]] && items=(sqlite-utils)
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUNDLE_BIN:-$here/target/release/bundle}
[[ -x $bin ]] || (cd "$here" && cargo build --release --quiet)
target=${BUNDLE_BENCH_TARGET:-$here/fixtures/targets/debian11.toml}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
export BUNDLE_CACHE_DIR=$work/cache
(cd "$work" && "$bin" build -q "${items[@]}" --target "$target" --name bench >/dev/null)
"$bin" verify -q "$work/dist/bench" --target "$target" >/dev/null   # the first: images made
times=()
for _ in $(seq "$runs"); do
  t0=$(now)
  "$bin" verify -q "$work/dist/bench" --target "$target" >/dev/null
  t1=$(now); times+=("$(echo "$t1 - $t0" | bc)")
done
printf '%s: verify again, %s runs, median %.2f s\n' "${items[*]}" "$runs" "$(printf '%s\n' "${times[@]}" | median)"
