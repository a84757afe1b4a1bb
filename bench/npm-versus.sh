#!/usr/bin/env bash
# npm packages, bundle against npm itself, on the live registry (a
# benchmark, not a test; needs node and npm on this machine). For each
# package:
#  1. the set: `npm install --package-lock-only --before DATE` against
#     `bundle plan` with `--exclude-newer DATE`, both for linux-x64-glibc
#     (npm's lock lists every platform's optional packages; those for
#     other platforms are left out of its side), compared as name@version;
#  2. the time from nothing to a node_modules (or a bundle): `npm install
#     --ignore-scripts` with an empty and a warm npm cache, against `bundle
#     build` with an empty and a warm cache (its output removed first).
#     bundle's runs use runtime = "system", so that both fetch the same
#     packages; bundling Node adds its tarball (about 50 MB, once).
# Usage: bench/npm-versus.sh [DATE] [PACKAGE...]
#   (default: 2025-06-01T00:00:00Z, and eslint express webpack @babel/core jest)
set -euo pipefail
date=${1:-2025-06-01T00:00:00Z}; shift || true
pkgs=("$@"); [[ ${#pkgs[@]} -eq 0 ]] && pkgs=(eslint express webpack @babel/core jest)
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUNDLE_BIN:-$here/target/release/bundle}
[[ -x $bin ]] || (cd "$here" && cargo build --release --quiet)
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

printf '%-14s %6s %6s %6s  %9s %9s %11s %11s\n' package npm bundle same npm-cold npm-warm bundle-cold bundle-warm
for p in "${pkgs[@]}"; do
  d=$work/$(echo "$p" | tr '/@' '__'); mkdir -p "$d/npm" "$d/bundle"
  echo '{"name":"versus","private":true}' > "$d/npm/package.json"
  (cd "$d/npm" && npm install --package-lock-only --ignore-scripts --no-audit --no-fund \
     --cache "$d/npm-cache" --before "$date" "$p" >/dev/null 2>&1)
  printf '[npm]\npackages = ["%s"]\nruntime = "system"\n' "$p" > "$d/bundle/set.toml"
  (cd "$d/bundle" && BUNDLE_CACHE_DIR=$d/bcache "$bin" plan -q set.toml --exclude-newer "$date" --json > plan.json)
  read -r n b same < <(python3 - "$d/npm/package-lock.json" "$d/bundle/plan.json" "$d/diff.txt" <<'PY'
import json, sys
lock = json.load(open(sys.argv[1]))
def fits(lst, v):
    if not lst: return True
    lst = [lst] if isinstance(lst, str) else lst
    if any(x == "!" + v for x in lst): return False
    pos = [x for x in lst if not x.startswith("!")]
    return not pos or v in pos
npm = set()
for path, e in lock["packages"].items():
    if not path or e.get("dev") or e.get("link"):
        continue
    if not (fits(e.get("os"), "linux") and fits(e.get("cpu"), "x64") and fits(e.get("libc"), "glibc")):
        continue
    name = e.get("name") or path.rsplit("node_modules/", 1)[1]
    npm.add(f"{name}@{e['version']}")
plan = json.load(open(sys.argv[2]))
ours = {f"{p['name']}@{p['version']}" for p in plan["npm"]["tree"]}
with open(sys.argv[3], "w") as f:
    for x in sorted(npm - ours): f.write(f"only npm:    {x}\n")
    for x in sorted(ours - npm): f.write(f"only bundle: {x}\n")
print(len(npm), len(ours), "yes" if npm == ours else "NO")
PY
)
  # Times: npm from nothing, then with its cache warm (node_modules removed).
  rm -rf "$d/npm/node_modules" "$d/npm-cache"; t=$(now)
  (cd "$d/npm" && npm install --ignore-scripts --no-audit --no-fund --cache "$d/npm-cache" >/dev/null 2>&1); nc=$(since "$t")
  rm -rf "$d/npm/node_modules"; t=$(now)
  (cd "$d/npm" && npm install --ignore-scripts --no-audit --no-fund --cache "$d/npm-cache" --prefer-offline >/dev/null 2>&1); nw=$(since "$t")
  rm -rf "$d/bcache" "$d/bundle/dist"; t=$(now)
  (cd "$d/bundle" && BUNDLE_CACHE_DIR=$d/bcache "$bin" build -q set.toml --exclude-newer "$date" --format dir >/dev/null); bc_=$(since "$t")
  rm -rf "$d/bundle/dist"; t=$(now)
  (cd "$d/bundle" && BUNDLE_CACHE_DIR=$d/bcache "$bin" build -q set.toml --exclude-newer "$date" --format dir >/dev/null); bw=$(since "$t")
  printf '%-14s %6s %6s %6s  %8.1fs %8.1fs %10.1fs %10.1fs\n' "$p" "$n" "$b" "$same" "$nc" "$nw" "$bc_" "$bw"
  [[ $same == yes ]] || sed 's/^/    /' "$d/diff.txt"
done
