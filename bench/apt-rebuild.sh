#!/usr/bin/env bash
# Times an apt bundle's first build (empty cache: package lists, .deb files,
# install) against a rebuild with nothing changed, which reuses the checked
# result. Needs Docker and the test image (bash .ci/run makes it); apt-get
# reaches the Debian mirror. A benchmark, not a test. Usage:
#   bench/apt-rebuild.sh [RUNS] [ITEM...]        (default: 3 apt:lua5.3 apt:jq)
set -euo pipefail
runs=${1:-3}; shift || true
items=("$@"); [[ ${#items[@]} -eq 0 ]] && items=(apt:lua5.3 apt:jq)
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUNDLE_BIN:-$here/target/release/bundle}
[[ -x $bin ]] || (cd "$here" && cargo build --release --quiet)
target=${BUNDLE_BENCH_TARGET:-$here/fixtures/targets/debian11-bare.toml}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
time_build() { # $1 = cache dir
  local t0 t1; t0=$(now)
  (cd "$work" && BUNDLE_CACHE_DIR=$1 "$bin" build -q "${items[@]}" --target "$target" --name bench >/dev/null)
  t1=$(now); echo "$t1 - $t0" | bc
}
first=(); again=()
for i in $(seq "$runs"); do
  first+=("$(time_build "$work/cache-$i")")
  again+=("$(time_build "$work/cache-$i")")
done
f=$(printf '%s\n' "${first[@]}" | median)
a=$(printf '%s\n' "${again[@]}" | median)
printf '%s, %s runs, medians:\n' "${items[*]}" "$runs"
printf '  first build (empty cache)   %6.2f s\n' "$f"
printf '  rebuild, nothing changed    %6.2f s   (%.3f of the first)\n' "$a" "$(echo "$a / $f" | bc -l)"
