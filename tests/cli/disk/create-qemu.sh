#!/usr/bin/env bash
# full-disk-create-qemu: `kina create cluster` on the qemu backend on a real
# full disk (disklib.sh), for the steps only a qemu create has: the node
# disk (kina-image unpack into $KINA_HOME/disks), the kernel (kina-vm kernel
# --fetch: the package from KINA_KERNEL_CACHE, off the tmpfs, unpacked onto
# it) and the boot's modules disk and room check. The node image is tiny
# (busybox and /kind/version, no systemd), and boots get 1 s: the sweep ends
# at the first size where every step before the boot succeeds and the boot
# fails by its timeout, which is not the disk's doing.
# Each failure before that must exit 73 or 74 naming "No space left on
# device" on each error line, print nothing on stdout, and leave every file
# as it was, but for what a create keeps for the next one (the kernel,
# its modules disk, the node disk), each whole when there; and no process or
# network of the cluster.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"
source "$KINA_SRC/tests/cli/disk/disklib.sh"
command -v vde_switch >/dev/null || { echo "skip: no vde_switch (vde2)"; exit 77; }
command -v e2fsck >/dev/null || { echo "skip: no e2fsck (e2fsprogs)"; exit 77; }
# The kernel package, downloaded off the tmpfs once (vmlib.sh's cache).
KINA_HOME="$TEST_TMP/khome" fetch_kernel
disk_setup 640m
export KUBECONFIG="$HOME/.kube/config"
export KINA_BOOT_TIMEOUT=1s KINA_DISK_SIZE=128Mi

root=$TEST_TMP/node-root
make_rootfs "$root"
mkdir -p "$root/kind" "$root/sbin"
echo v1.37.2 > "$root/kind/version"
IMG=kina.test/node:v1.37.2
expect_exit 0 kina-image build --rootfs "$root" --tag "$IMG" --entrypoint /sbin/init
printf 'kind: Cluster\napiVersion: kina/v1alpha1\nbackend: qemu\nnodes:\n- role: control-plane\n' > "$TEST_TMP/cluster.yaml"

# What a failed create keeps for the next one: the kernel, its modules disk,
# the node disk (each under its final name only once whole), the home's
# machine key (made on first use, for the cluster's sealed keys) and
# kina-vm's record of whether KVM works here (accel-probe).
SNAP_SKIP='^home/(accel-probe|kernel/kernel[.]json|kernel/[^/.][^/]*/(vmlinuz|boot/[^/]+|lib/.*|modules[.]ext4)|disks/node-[0-9a-f]{64}[.]ext4|keys/machine[.]key)$'
caches_whole() {
  disks_whole "$1" "$KINA_HOME"/disks/node-*.ext4 "$KINA_HOME"/kernel/*/modules.ext4
  if [ -e "$KINA_HOME/kernel/kernel.json" ]; then
    [ -f "$(jq -r .path "$KINA_HOME/kernel/kernel.json")" ] && [ -f "$(jq -r .modules "$KINA_HOME/kernel/kernel.json")/modules.dep" ] ||
      fail "$1: kernel.json names a kernel that is not whole: $(cat "$KINA_HOME/kernel/kernel.json")"
  fi
}
# After each failure: no process of the cluster, the caches whole, and the
# step that failed (its ✗ line; none when a write of the front end itself
# failed).
failed_at() {
  local left; left=$(leftovers)
  [ -z "$left" ] || fail "$1: processes left: $left"
  caches_whole "$1"
  failed_step
}
# The end: the boot, past its room check, fails at its timeout (69); the
# create removes what it made.
at_the_boot() { [ "$1" = 69 ] && grep -q '^ ✗ Booting nodes' "$TEST_TMP/err"; }
booted_and_removed() {
  grep -q '^ ✓ Ensuring the node kernel' "$TEST_TMP/err" || return 1
  grep -q '^ ✓ Preparing the node disk' "$TEST_TMP/err" || return 1
  grep -q 'create failed (exit 69): removing what it made' "$TEST_TMP/err" || return 1
  assert_not_contains "$(cat "$TEST_TMP/err")" "No space left on device"
  [ ! -e "$KINA_HOME/clusters/q" ] || return 1
  [ -z "$(leftovers)" ] || return 1
  [ -s "$KINA_HOME/kernel/kernel.json" ] && ls "$KINA_HOME"/disks/node-*.ext4 "$KINA_HOME"/kernel/*/modules.ext4 >/dev/null || return 1
  caches_whole "after the end"
}
SWEEP_GROW=geometric SWEEP_FAILED=failed_at SWEEP_ERRORS=each SWEEP_END=at_the_boot
sweep "kina create cluster (qemu)" booted_and_removed kina create cluster --name q --config "$TEST_TMP/cluster.yaml" --image "$IMG"
ok "the steps that failed on the full disk: $(failed_steps)"
