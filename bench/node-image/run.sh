#!/bin/bash
# bench/node-image/run.sh BUILD_DIR: the default node image's build time
# (warm: from the cache; with COLD=1 also a build with an empty kina cache and
# warm Go caches; COLD=full also empties Go's caches, the first run on a new
# machine), its size (compressed layer, unpacked file data), image to base
# disk (kina-image unpack --disk) against zcat of its layer, and node boot to
# systemd-ready under TCG against a bare boot of the same kernel (qemu with an
# initramfs that powers off at once), interleaved, RUNS times (default 3).
# Prints numbers and ratios; asserts nothing. Needs root.
set -eu -o pipefail
BUILD=${1:?usage: run.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
RUNS=${RUNS:-3}
VERSION=${VERSION:-v1.37.2}
export PATH="$BUILD/tools/kina-vm:$BUILD/tools/kina-image:$BUILD/tools/kina-audit:$SRC/tools/kina:$PATH"
export KINA_KERNEL_CACHE="${KINA_KERNEL_CACHE:-/tmp/kina-kernel-cache}"
TMP=$(mktemp -d /var/tmp/kina-bench-node.XXXXXX)
export KINA_HOME="$TMP/home"
cleanup() { for n in $(kina-vm ls 2>/dev/null | jq -r .name); do kina-vm rm -f "$n" >/dev/null 2>&1 || true; done; rm -rf "$TMP"; }
trap cleanup EXIT
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc -l | xargs printf '%.1f'; }
mean() { awk '{s+=$1} END {printf "%.2f", s/NR}'; }

if [ -n "${COLD:-}" ]; then
  export KINA_CACHE_DIR="$TMP/cache"
  if [ "$COLD" = full ]; then export GOCACHE="$TMP/gocache" GOMODCACHE="$TMP/gomod" GOFLAGS=-modcacherw; fi
  t0=$(now)
  kina build node-image --kubernetes-version "$VERSION" > "$TMP/cold.json" 2> "$TMP/cold.err"
  echo "cold build (COLD=$COLD): $(since "$t0") s"
  grep ' done in ' "$TMP/cold.err" | sed 's/^/  /'
fi
t0=$(now)
kina build node-image --kubernetes-version "$VERSION" > "$TMP/image.json" 2> "$TMP/warm.err"
echo "warm build (cached archive imported): $(since "$t0") s"
grep -q 'using the cached build' "$TMP/warm.err" || { echo "  (the cache was empty: that was a cold build)"; grep ' done in ' "$TMP/warm.err" | sed 's/^/  /'; }

compressed=$(jq -r .size "$TMP/image.json")
layer=$(jq -r '.layers[0].digest' "$TMP/image.json" | cut -d: -f2)
blob="$KINA_HOME/images/blobs/sha256/$layer"
t0=$(now); zcat "$blob" > /dev/null; tz=$(since "$t0")
t0=$(now); kina-image unpack "kina.local/node:$VERSION" --disk "$TMP/node.ext4" --disk-size 8Gi > "$TMP/rootfs.json"; td=$(since "$t0")
unpacked=$(jq -r .size "$TMP/rootfs.json")
printf 'size: %d MiB compressed (one layer), %d MiB unpacked file data (%d files)\n' \
  $((compressed / 1048576)) $((unpacked / 1048576)) "$(jq -r .files "$TMP/rootfs.json")"
echo "image to base disk: unpack --disk $td s, zcat $tz s, ratio $(echo "$td / $tz" | bc -l | xargs printf '%.2f')"

kina-vm kernel --fetch > /dev/null
KERNEL=$(kina-vm kernel | jq -r .path)
source "$SRC/bench/vm/bare.sh"
bare_initramfs "$BUILD" "$TMP/min.cpio"
: > "$TMP/bare.txt"; : > "$TMP/node.txt"
for i in $(seq "$RUNS"); do
  t0=$(now)
  bare_boot "$KERNEL" "$TMP/min.cpio" -m 2G -smp 2
  since "$t0" >> "$TMP/bare.txt"
  t0=$(now)
  kina-vm boot --name "n$i" --disk "$TMP/node.ext4" --cpus 2 --memory 2Gi --accel tcg --ready systemd --timeout 900s </dev/null >/dev/null
  since "$t0" >> "$TMP/node.txt"
  kina-vm rm -f "n$i" >/dev/null
done
b=$(mean < "$TMP/bare.txt"); n=$(mean < "$TMP/node.txt")
echo "boot: node to systemd-ready $n s, bare kernel boot $b s, ratio $(echo "$n / $b" | bc -l | xargs printf '%.1f') (TCG, 2 vCPU, $RUNS runs)"
