#!/usr/bin/env bash
# The sandbox side, timed as the user lives it: in the sandbox stand-in
# (Debian 11, python3 and pip from apt, user `sandbox`, /mnt/data, no
# network), from the uploaded files to a working import.
#
#   bench/sandbox-install.sh [RUNS] [REQUIREMENT...]
#
# Builds the set (default: numpy pandas matplotlib scipy scikit-learn) for
# fixtures/targets/debian11.toml from the live index, then, in fresh
# containers of the stand-in, each run times:
#   bundle   PROMPT.txt's code (check, unpack, install.py), then
#            `import <each requested module>`;
#   pip      the same with BUNDLE_INSTALL_WITH_PIP=1 (install.py's pip path,
#            what every bundle did before);
#   volumes  the same as `bundle`, uploaded as 25 MB volumes;
#   unzip    a plain `zipfile` extraction of the same wheels (the yardstick).
# The upload (copying the files into /mnt/data) is not timed. Prints each
# run and the medians, and the ratio bundle / unzip.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
shift || true
REQS=("$@")
[ ${#REQS[@]} -gt 0 ] || REQS=(numpy pandas matplotlib scipy scikit-learn)
IMPORTS=$(printf '%s\n' "${REQS[@]}" | sed 's/scikit-learn/sklearn/; s/[<>=!~\[].*//; s/-/_/g' | paste -sd, -)

BASE=bundle-test/bullseye:glibc2.31
IMAGE=bundle-test/sandbox:debian11-python3
docker image inspect "$BASE" >/dev/null 2>&1 || { echo "no $BASE: run bash .ci/run once (it builds the test images)" >&2; exit 1; }
if ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
  printf 'FROM %s\nRUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3 python3-pip && rm -rf /var/lib/apt/lists/* && useradd --uid 1000 --create-home --shell /bin/sh sandbox && mkdir -p /mnt/data && chown sandbox /mnt/data\n' "$BASE" \
    | DOCKER_BUILDKIT=0 docker build --platform linux/amd64 -q -t "$IMAGE" - >/dev/null
fi

cargo build --release --locked -q
BUNDLE=$PWD/target/release/bundle
WORK=$(mktemp -d /tmp/bundle-bench-sandbox.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
TARGET=$PWD/fixtures/targets/debian11.toml
( cd "$WORK" && "$BUNDLE" -q build "${REQS[@]}" --name set --target "$TARGET" --out one >/dev/null \
  && "$BUNDLE" -q build "${REQS[@]}" --name set --target "$TARGET" --out vols --max-upload 25MB >/dev/null )
python3 - "$WORK/one/set/PROMPT.txt" "$WORK/one/prompt.py" <<'EOF'
import sys
text = open(sys.argv[1]).read()
start = text.index("```python\n") + len("```python\n")
open(sys.argv[2], "w").write(text[start:text.index("```", start)])
EOF
python3 - "$WORK/vols/set/PROMPT.txt" "$WORK/vols/prompt.py" <<'EOF'
import sys
text = open(sys.argv[1]).read()
start = text.index("```python\n") + len("```python\n")
open(sys.argv[2], "w").write(text[start:text.index("```", start)])
EOF
mkdir -p "$WORK/wheels" && cp "$WORK"/one/set/wheels/*.whl "$WORK/wheels/"
echo "set: ${REQS[*]}; $(ls "$WORK/wheels" | wc -l) wheels, $(du -sm "$WORK/wheels" | cut -f1) MB; $(ls "$WORK/vols" | grep -c '\.zip\.') volumes"

# One timed run in a fresh container as `sandbox`, no network: the files of
# $1 (a folder) are copied into /mnt/data first (not timed), then $2 runs
# (timed, in seconds, printed last).
timed() {
  local from=$1 script=$2 env=${3:-}
  docker run --rm --network none --platform linux/amd64 -u sandbox -e HOME=/home/sandbox ${env:+-e "$env"} \
    -v "$from:/upload:ro" "$IMAGE" sh -c "cp -R /upload/. /mnt/data/ && cd /mnt/data && sync && \
      s=\$(date +%s.%N) && ( $script ) >/tmp/out 2>&1 || { cat /tmp/out; exit 1; }; e=\$(date +%s.%N); \
      echo \"\$s \$e\" | awk '{printf \"%.2f\\n\", \$2 - \$1}'" | tail -n 1
}

stage() { # $1 folder to make, $2.. files to put in it
  local d=$1; shift; mkdir -p "$d"; cp "$@" "$d/"
}
stage "$WORK/up-one" "$WORK/one/set.zip" "$WORK/one/prompt.py"
stage "$WORK/up-vols" "$WORK/vols"/set.zip.* "$WORK/vols/prompt.py"

declare -a B P V U
for i in $(seq "$RUNS"); do
  B+=("$(timed "$WORK/up-one" "python3 prompt.py && cd /tmp && python3 -c 'import $IMPORTS'")")
  P+=("$(timed "$WORK/up-one" "python3 prompt.py && cd /tmp && python3 -c 'import $IMPORTS'" BUNDLE_INSTALL_WITH_PIP=1)")
  V+=("$(timed "$WORK/up-vols" "python3 prompt.py && cd /tmp && python3 -c 'import $IMPORTS'")")
  U+=("$(timed "$WORK/wheels" "python3 -c 'import glob, zipfile
for w in sorted(glob.glob(\"/mnt/data/*.whl\")):
    zipfile.ZipFile(w).extractall(\"/tmp/x\")'")")
  echo "run $i: bundle ${B[-1]} s, pip ${P[-1]} s, volumes ${V[-1]} s, unzip ${U[-1]} s"
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
mb=$(median "${B[@]}"); mp=$(median "${P[@]}"); mv=$(median "${V[@]}"); mu=$(median "${U[@]}")
echo "median of $RUNS: bundle $mb s, pip path $mp s, volumes $mv s, plain unzip $mu s"
awk -v b="$mb" -v p="$mp" -v v="$mv" -v u="$mu" 'BEGIN {printf "ratio to unzip: bundle %.2f, volumes %.2f, pip path %.2f\n", b / u, v / u, p / u}'
