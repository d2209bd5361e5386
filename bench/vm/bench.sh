#!/bin/bash
# bench/vm/bench.sh BUILD_DIR: kina-vm boot-to-agent-ready time against a bare
# qemu-system-x86_64 boot of the same kernel and machine type with a minimal initramfs that
# powers off at once (same run, same accel: TCG), exec round trip, and the
# host memory (RSS) of an idle VM's QEMU and of its supervisor.
# Prints numbers and ratios; asserts nothing.
set -eu -o pipefail
BUILD=${1:?usage: bench.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
RUNS=${RUNS:-5}
export PATH="$BUILD/tools/kina-vm:$BUILD/tools/kina-audit:$PATH"
export KINA_KERNEL_CACHE="${KINA_KERNEL_CACHE:-/tmp/kina-kernel-cache}"
TMP=$(mktemp -d /tmp/kina-bench-vm.XXXXXX)
export KINA_HOME="$TMP/home"
cleanup() { for n in $(kina-vm ls 2>/dev/null | jq -r .name); do kina-vm rm -f "$n" >/dev/null 2>&1 || true; done; rm -rf "$TMP"; }
trap cleanup EXIT

now() { date +%s.%N; }
mean() { awk '{s+=$1} END {printf "%.3f", s/NR}'; }

kina-vm kernel --fetch >/dev/null
KERNEL=$(kina-vm kernel | jq -r .path)

# The bare reference: kina-init in probe mode powers off as soon as it runs.
source "$(dirname "$0")/bare.sh"
bare_initramfs "$BUILD" "$TMP/min.cpio"
mkdir -p "$TMP/rootfs/bin" "$TMP/rootfs/etc"
cp "$(command -v busybox)" "$TMP/rootfs/bin/busybox"
for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$TMP/rootfs/bin/$a"; done
echo 'root:x:0:0:root:/root:/bin/sh' > "$TMP/rootfs/etc/passwd"
# Warm-up boot: builds the shared base disk and the modules disk once.
kina-vm boot --name warm --rootfs "$TMP/rootfs" --accel tcg -- /bin/sh -c 'while :; do sleep 3600; done' </dev/null >/dev/null
kina-vm rm -f warm
: > "$TMP/bare.txt"; : > "$TMP/boot.txt"
# Interleaved, so load from elsewhere hits both sides alike.
for i in $(seq "$RUNS"); do
  t0=$(now)
  bare_boot "$KERNEL" "$TMP/min.cpio" -m 512M
  t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$TMP/bare.txt"
  t0=$(now)
  kina-vm boot --name "b$i" --rootfs "$TMP/rootfs" --accel tcg -- /bin/sh -c 'while :; do sleep 3600; done' </dev/null >/dev/null
  t1=$(now)
  echo "$t1 - $t0" | bc -l >> "$TMP/boot.txt"
  [ "$i" = "$RUNS" ] || kina-vm rm -f "b$i"
done
VM="b$RUNS"
: > "$TMP/exec.txt"
for _ in $(seq 20); do
  t0=$(now); kina-vm exec "$VM" -- true; t1=$(now)
  echo "($t1 - $t0) * 1000" | bc -l >> "$TMP/exec.txt"
done
sleep 2
DIR=$(kina-vm inspect "$VM" | jq -r .dir)
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
QRSS=$(rss "$(cat "$DIR/qemu.pid")")
SRSS=$(rss "$(cat "$DIR/supervisor.pid")")

bare=$(mean < "$TMP/bare.txt"); boot=$(mean < "$TMP/boot.txt"); ex=$(mean < "$TMP/exec.txt")
echo "bare qemu boot to /init + poweroff (TCG, mean of $RUNS): ${bare} s"
echo "kina-vm boot to agent ready      (TCG, mean of $RUNS): ${boot} s"
echo "boot ratio kina-vm/bare: $(echo "$boot / $bare" | bc -l | xargs printf '%.2f')  (target <= 1.5)"
echo "exec round trip (kina-vm exec NAME -- true, mean of 20): ${ex} ms  (target <= 50 ms)"
echo "idle VM RSS: QEMU $((QRSS / 1024)) MiB, supervisor $((SRSS / 1024)).$(( (SRSS % 1024) * 10 / 1024 )) MiB  (supervisor target <= 8 MiB)"
