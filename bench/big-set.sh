#!/usr/bin/env bash
# Times `bundle build` of a big set (default: pandas matplotlib scikit-learn
# jupyterlab, for the default target: CPython 3.8, manylinux x86_64, glibc
# 2.31) with an empty and a warm cache, side by side with `uv pip install
# --target` (resolve, download and unpack) and `pip download` for the same
# platform, in the same run; also bundle's peak memory. Talks to the real
# index; a benchmark, not a test. Needs uv (BUNDLE_TEST_UV or on PATH) and
# python3 with pip. Usage:
#   bench/big-set.sh [RUNS] [REQUIREMENT...]
set -euo pipefail
runs=${1:-3}; shift || true
reqs=("$@"); [[ ${#reqs[@]} -eq 0 ]] && reqs=(pandas matplotlib scikit-learn jupyterlab)
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUNDLE_BIN:-$here/target/release/bundle}
[[ -x $bin ]] || (cd "$here" && cargo build --release --quiet)
uv=${BUNDLE_TEST_UV:-$(command -v uv || true)}
[[ -n $uv ]] || { echo "needs uv: set BUNDLE_TEST_UV or put uv on PATH" >&2; exit 2; }
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
unset PIP_FIND_LINKS PIP_INDEX_URL
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Each timed run starts on a quiet disk: without the sync, a run pays for
# the writeback of the one before it (uv's unpacked tree is ~500 MB).
elapsed() { local t0 t1; sync; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); echo "$t1 - $t0" | bc; }

uv_run() {
  "$uv" pip install -q --no-cache --target "$work/uv" --python-version 3.8 \
    --python-platform x86_64-manylinux_2_31 "${reqs[@]}"
}
pip_run() {
  python3 -m pip download --quiet --no-cache-dir --disable-pip-version-check \
    --only-binary :all: --implementation cp --python-version 3.8 \
    --platform manylinux_2_31_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$work/pip" "${reqs[@]}"
}
bundle_run() { # $1 = cache dir
  (cd "$work" && BUNDLE_CACHE_DIR=$1 "$bin" build -q "${reqs[@]}" --name bench)
}
peak_kb() { # $1 = cache dir; prints bundle's peak RSS in KiB
  local out; out=$( { cd "$work" && BUNDLE_CACHE_DIR=$1 /usr/bin/time -f '%M' "$bin" build -q "${reqs[@]}" --name bench >/dev/null; } 2>&1 | tail -1)
  echo "$out"
}

uvs=(); pips=(); cold=(); warm=(); peaks=()
for i in $(seq "$runs"); do
  rm -rf "$work/uv" "$work/pip"   # outside the timings
  uvs+=("$(elapsed uv_run)")
  pips+=("$(elapsed pip_run)")
  rm -rf "$work/cache-$i" "$work/dist"   # an empty cache and output, as uv's
  cold+=("$(elapsed bundle_run "$work/cache-$i")")
  warm+=("$(elapsed bundle_run "$work/cache-$i")")
  rm -rf "$work/cache-peak"
  peaks+=("$(peak_kb "$work/cache-peak")")
done
u=$(printf '%s\n' "${uvs[@]}" | median)
p=$(printf '%s\n' "${pips[@]}" | median)
c=$(printf '%s\n' "${cold[@]}" | median)
w=$(printf '%s\n' "${warm[@]}" | median)
m=$(printf '%s\n' "${peaks[@]}" | median)
printf 'requirements: %s (%d runs, medians)\n' "${reqs[*]}" "$runs"
printf '  uv pip install --target   %6.2f s\n' "$u"
printf '  pip download              %6.2f s\n' "$p"
printf '  bundle build, cold        %6.2f s   %.2f of uv, %.2f of pip   peak %d MB\n' "$c" "$(echo "$c/$u" | bc -l)" "$(echo "$c/$p" | bc -l)" "$((m / 1024))"
printf '  bundle build, warm        %6.2f s\n' "$w"
