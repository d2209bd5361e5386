# vm-systemd: a debootstrapped Debian bookworm (minbase + systemd + kmod) boots
# with systemd as PID 1, reaches running/degraded, loads a module from the
# kernel's modules disk, sees --kernel-arg, and `stop` shuts it down cleanly.
# The debootstrapped tree is kept as a tarball in $KINA_ROOTFS_CACHE
# (default /tmp/kina-rootfs-cache) so reruns skip the 40 s debootstrap.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

command -v debootstrap >/dev/null || fail "debootstrap is missing (tools/kina-vm/packages.debian)"
CACHE="${KINA_ROOTFS_CACHE:-/tmp/kina-rootfs-cache}"
mkdir -p "$CACHE"
TARBALL="$CACHE/bookworm-systemd.tar"
(
  flock 9
  if [ ! -s "$TARBALL" ]; then
    debootstrap --variant=minbase --include=systemd,systemd-sysv,kmod,udev,dbus bookworm \
      "$TEST_TMP/bootstrap" ${KINA_DEBIAN_MIRROR:+"$KINA_DEBIAN_MIRROR"} > "$TEST_TMP/debootstrap.log" 2>&1 ||
      { tail -5 "$TEST_TMP/debootstrap.log" >&2; exit 1; }
    tar -C "$TEST_TMP/bootstrap" --numeric-owner -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
    rm -rf "$TEST_TMP/bootstrap"
  fi
) 9>"$CACHE/.lock"
mkdir "$TEST_TMP/rootfs"
tar -C "$TEST_TMP/rootfs" --numeric-owner -xpf "$TARBALL"
fetch_kernel
ok "rootfs and kernel"

boot_vm sd --rootfs "$TEST_TMP/rootfs" --cpus 2 --memory 1Gi --kernel-arg systemd.show_status=0
expect_exit 0 kina-vm exec sd -- readlink /proc/1/exe
assert_contains "$OUT" "lib/systemd/systemd" "PID 1"
expect_exit 0 kina-vm exec sd -- cat /proc/cmdline
assert_contains "$OUT" "systemd.show_status=0"
# The agent answers before systemd has set itself up ("offline"): wait.
state=""
for _ in $(seq 120); do
  state=$(kina-vm exec sd -- systemctl is-system-running --wait 2>/dev/null || true)
  case "$state" in running|degraded) break ;; esac
  sleep 0.5
done
case "$state" in running|degraded) ;; *) fail "systemctl is-system-running: '$state'" ;; esac
ok "systemd is PID 1 and $state"

expect_exit 0 kina-vm exec sd -- sh -c 'modprobe overlay && grep -w overlay /proc/filesystems'
assert_contains "$OUT" "overlay"
# minbase has no iproute2: read the kernel's tables. 0202000A is 10.0.2.2.
expect_exit 0 kina-vm exec sd -- grep -c "10.0.2.15" /proc/net/fib_trie
[ "$OUT" -ge 1 ] || fail "no 10.0.2.15 in the guest"
expect_exit 0 kina-vm exec sd -- awk '$2 == "00000000" { print $3 }' /proc/net/route
assert_eq "$OUT" "0202000A" "default gateway"
ok "modprobe overlay, static address"

expect_exit 0 kina-vm stop sd --timeout 60s
assert_eq "$(jq_field "$OUT" .state)" "exited"
assert_eq "$(jq_field "$OUT" .reason)" "stopped"
assert_not_contains "$ERR" "by force" "stop"
expect_exit 0 kina-vm logs sd
assert_contains "$OUT" "reboot: Power down"
expect_exit 0 kina-vm rm sd
assert_eq "$(leftovers)" "" "processes left"
ok "clean stop"
