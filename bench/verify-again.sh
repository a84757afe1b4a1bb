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
time_verify() { # extra verify flags
  local t0 t1; t0=$(now)
  "$bin" verify -q "$work/dist/bench" --target "$target" "$@" >/dev/null
  t1=$(now); echo "$t1 - $t0" | bc
}
again=(); fresh=()
for _ in $(seq "$runs"); do
  again+=("$(time_verify)")
  fresh+=("$(time_verify --fresh)")
done
a=$(printf '%s\n' "${again[@]}" | median)
f=$(printf '%s\n' "${fresh[@]}" | median)
printf '%s, %s runs, medians:\n' "${items[*]}" "$runs"
printf '  verify again (an identical run passed: its report)  %6.2f s\n' "$a"
printf '  verify again --fresh (the container work again)     %6.2f s\n' "$f"
