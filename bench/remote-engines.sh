#!/usr/bin/env bash
# Times the same Docker work through different engines and platforms, side
# by side in one run, medians of RUNS:
# - `bundle build lua5.3` (apt, empty cache each run; the sandbox image
#   kept) through the local socket, then through a TLS front (socat, with a
#   CA and client certificate made here) to the same daemon;
# - `bundle verify --fresh` of one wheels + apt bundle (lua5.3 and a pure
#   wheel from a 127.0.0.1 index) on the amd64 test image, then on the
#   arm64 one through qemu-user-static.
# Needs what bash .ci/run sets up (Docker, socat, the emulator, both test
# images). A benchmark, not a test. Usage: bench/remote-engines.sh [RUNS]
set -euo pipefail
runs=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUNDLE_BIN:-$here/target/release/bundle}
[[ -x $bin ]] || (cd "$here" && cargo build --release --quiet)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
cd "$work"

# The TLS front: a CA, the server's certificate for 127.0.0.1, a client's.
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
for who in server client; do
  openssl req "${ec[@]}" -keyout $who.key -out $who.csr -subj /CN=$who 2>/dev/null
done
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
printf 'extendedKeyUsage=clientAuth\n' >client.ext
for who in server client; do
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem \
    -days 2 -extfile $who.ext 2>/dev/null
done
mkdir certs && cp ca.pem certs/ && cp client.pem certs/cert.pem && cp client.key certs/key.pem
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
socat OPENSSL-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,cert=server.pem,key=server.key,cafile=ca.pem,verify=1 \
  UNIX-CONNECT:/var/run/docker.sock 2>/dev/null &
pids+=($!)
sleep 0.5

bare=$here/fixtures/targets/debian11-bare.toml
apt_build() { # env assignments...
  rm -rf cache dist
  local t0 t1; t0=$(now)
  env BUNDLE_CACHE_DIR=$work/cache "$@" "$bin" build -q lua5.3 --target "$bare" >/dev/null
  t1=$(now); echo "$t1 - $t0" | bc
}
apt_build >/dev/null   # the sandbox image, once
tls=(DOCKER_HOST=tcp://127.0.0.1:$port DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=$work/certs)
local_t=(); tls_t=()
for _ in $(seq "$runs"); do
  local_t+=("$(apt_build)")
  tls_t+=("$(apt_build "${tls[@]}")")
done

# A pure wheel on a 127.0.0.1 index, and the bundle for each platform.
mkdir -p index/simple/tinypkg index/files
python3 - <<'PY'
import hashlib, zipfile, json, os
name = "index/files/tinypkg-1.0-py3-none-any.whl"
with zipfile.ZipFile(name, "w") as z:
    z.writestr("tinypkg/__init__.py", "def hello():\n    return 'hello'\n")
    z.writestr("tinypkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n")
    z.writestr("tinypkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: bench\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("tinypkg-1.0.dist-info/RECORD", "")
sha = hashlib.sha256(open(name, "rb").read()).hexdigest()
page = {"meta": {"api-version": "1.0"}, "name": "tinypkg", "files": [{"filename": os.path.basename(name), "url": "../../files/" + os.path.basename(name), "hashes": {"sha256": sha}}]}
open("index/simple/tinypkg/index.html", "w").write(json.dumps(page))
PY
iport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server "$iport" --bind 127.0.0.1 --directory "$work/index" >/dev/null 2>&1 &
pids+=($!)
sleep 0.5
printf '[pypi]\nrequirements = ["tinypkg"]\ncheck = [{ run = "python3 -c '"'"'import tinypkg; print(tinypkg.hello())'"'"'", expect = "hello" }]\n[apt]\npackages = ["lua5.3"]\nbinaries = ["lua5.3"]\ncheck = [{ run = "lua5.3 -v", expect = "Lua 5.3" }]\n' >mixed.toml
verify_t() { # target
  local t0 t1; t0=$(now)
  BUNDLE_CACHE_DIR=$work/cache "$bin" verify -q "dist/mixed-$(basename "$1" .toml)" --target "$1" --fresh >/dev/null
  t1=$(now); echo "$t1 - $t0" | bc
}
amd=$here/fixtures/targets/debian11.toml
arm=$here/fixtures/targets/debian11-arm64.toml
for t in "$amd" "$arm"; do
  BUNDLE_CACHE_DIR=$work/cache "$bin" build -q mixed.toml --target "$t" --name "mixed-$(basename "$t" .toml)" \
    --index-url "http://127.0.0.1:$iport/simple/" >/dev/null
  verify_t "$t" >/dev/null   # the first: images made
done
amd_t=(); arm_t=()
for _ in $(seq "$runs"); do
  amd_t+=("$(verify_t "$amd")")
  arm_t+=("$(verify_t "$arm")")
done
m() { printf '%s\n' "$@" | median; }
l=$(m "${local_t[@]}"); t=$(m "${tls_t[@]}"); a=$(m "${amd_t[@]}"); r=$(m "${arm_t[@]}")
printf '%s runs, medians:\n' "$runs"
printf '  apt build lua5.3, local socket          %6.2f s\n' "$l"
printf '  apt build lua5.3, TLS (socat front)     %6.2f s   (%.2f x)\n' "$t" "$(echo "$t / $l" | bc -l)"
printf '  verify --fresh, amd64                   %6.2f s\n' "$a"
printf '  verify --fresh, arm64 under emulation   %6.2f s   (%.2f x)\n' "$r" "$(echo "$r / $a" | bc -l)"
