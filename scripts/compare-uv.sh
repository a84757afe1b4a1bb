#!/usr/bin/env bash
# Compare bundle's resolution with `uv pip compile` for the same target, live.
# Usage: scripts/compare-uv.sh [--python 3.8.10] [--arch x86_64|aarch64] REQUIREMENT...
# Needs uv on PATH (pip install uv). Talks to the real index: not part of the tests.
set -euo pipefail
py=3.8.10; arch=x86_64
while [[ $# -gt 0 ]]; do
  case "$1" in
    --python) py=$2; shift 2;;
    --arch) arch=$2; shift 2;;
    *) break;;
  esac
done
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUNDLE_BIN:-$here/target/release/bundle}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
platform=linux/amd64; [[ $arch == aarch64 ]] && platform=linux/arm64
cat > "$tmp/target.toml" <<T
description = "compare"
image = "ubuntu:20.04"
platform = "$platform"
glibc = "2.31"
python = "$py"
T
printf '%s\n' "$@" > "$tmp/req.txt"
"$bin" plan "$@" --target "$tmp/target.toml" --json \
  | python3 -c 'import json,sys; [print(w["package"] + "==" + w["version"]) for w in json.load(sys.stdin)["wheels"]]' \
  | sort > "$tmp/bundle.txt"
uv pip compile -q --no-header --no-annotate "$tmp/req.txt" --python-version "$py" \
  --python-platform "$arch-manylinux_2_31" --only-binary :all: \
  | grep -v '^\s*#' | sed 's/ *;.*//' \
  | python3 -c 'import re,sys
for l in sys.stdin:
    n,v=l.strip().split("==")
    print(re.sub(r"[-_.]+","-",n).lower()+"=="+v)' | sort > "$tmp/uv.txt"
if diff -u "$tmp/uv.txt" "$tmp/bundle.txt"; then
  echo "same: $(wc -l < "$tmp/bundle.txt") packages (python $py, $arch)"
else
  echo "DIFFERENT (python $py, $arch)"; exit 1
fi
