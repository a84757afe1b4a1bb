#!/usr/bin/env bash
# Times `bundle build sqlite-utils` with a cold and a warm cache against
# `pip download` for the same target (CPython 3.8, manylinux x86_64).
# Talks to the real index; a benchmark, not a test. Usage:
#   bench/sqlite-utils.sh [RUNS] [REQUIREMENT...]     (default: 5 sqlite-utils)
set -euo pipefail
runs=${1:-5}; shift || true
reqs=("$@"); [[ ${#reqs[@]} -eq 0 ]] && reqs=(sqlite-utils)
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUNDLE_BIN:-$here/target/release/bundle}
[[ -x $bin ]] || (cd "$here" && cargo build --release --quiet)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
unset PIP_FIND_LINKS PIP_INDEX_URL
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

time_pip() {
  local t0 t1; rm -rf "$work/pip"; t0=$(now)
  python3 -m pip download --quiet --no-cache-dir --disable-pip-version-check \
    --only-binary :all: --implementation cp --python-version 3.8 \
    --platform manylinux_2_31_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$work/pip" "${reqs[@]}" >/dev/null
  t1=$(now); echo "$t1 - $t0" | bc
}
time_bundle() { # $1 = cache dir (emptied first when $2 = cold)
  local t0 t1
  [[ ${2:-} == cold ]] && rm -rf "$1"
  t0=$(now)
  (cd "$work" && BUNDLE_CACHE_DIR=$1 "$bin" build -q "${reqs[@]}" --name bench >/dev/null)
  t1=$(now); echo "$t1 - $t0" | bc
}

pip_times=(); cold_times=(); warm_times=()
for i in $(seq "$runs"); do
  pip_times+=("$(time_pip)")
  cold_times+=("$(time_bundle "$work/cache-$i" cold)")
  warm_times+=("$(time_bundle "$work/cache-$i")")
done
p=$(printf '%s\n' "${pip_times[@]}" | median)
c=$(printf '%s\n' "${cold_times[@]}" | median)
w=$(printf '%s\n' "${warm_times[@]}" | median)
printf 'requirements:          %s (%d runs, medians)\n' "${reqs[*]}" "$runs"
printf 'pip download:          %6.3f s\n' "$p"
printf 'bundle build (cold):   %6.3f s  = %5.1f%% of pip\n' "$c" "$(echo "100*$c/$p" | bc -l)"
printf 'bundle build (warm):   %6.3f s  = %5.1f%% of pip\n' "$w" "$(echo "100*$w/$p" | bc -l)"
