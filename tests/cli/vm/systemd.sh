# vm-systemd: a debootstrapped Debian bookworm (minbase + systemd + kmod) boots
# with systemd as PID 1, reaches running/degraded (boot --ready systemd), loads a module from the
# kernel's modules disk, sees --kernel-arg, and `stop` shuts it down cleanly;
# `start --ready systemd` brings it back to running/degraded with what was
# written before the stop.
# The root comes from systemd_rootfs (vmlib.sh, cached as a tarball).
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

systemd_rootfs "$TEST_TMP/rootfs"
fetch_kernel
ok "rootfs and kernel"

BOOT_TIMEOUT=600s boot_vm sd --rootfs "$TEST_TMP/rootfs" --cpus 2 --memory 1Gi --kernel-arg systemd.show_status=0 --ready systemd
# --ready systemd: the record comes once systemd says running or degraded.
assert_eq "$(jq_field "$OUT" .ready)" "systemd"
check_records Machine "$OUT"
expect_exit 0 kina-vm exec sd -- readlink /proc/1/exe
assert_contains "$OUT" "lib/systemd/systemd" "PID 1"
expect_exit 0 kina-vm exec sd -- cat /proc/cmdline
assert_contains "$OUT" "systemd.show_status=0"
state=$(guest_state sd)
case "$state" in running|degraded) ;; *) fail "systemctl is-system-running right after boot: '$state'" ;; esac
ok "systemd is PID 1 and $state"

expect_exit 0 kina-vm exec sd -- sh -c 'modprobe overlay && grep -w overlay /proc/filesystems'
assert_contains "$OUT" "overlay"
# minbase has no iproute2: read the kernel's tables. 0202000A is 10.0.2.2.
expect_exit 0 kina-vm exec sd -- grep -c "10.0.2.15" /proc/net/fib_trie
[ "$OUT" -ge 1 ] || fail "no 10.0.2.15 in the guest"
expect_exit 0 kina-vm exec sd -- awk '$2 == "00000000" { print $3 }' /proc/net/route
assert_eq "$OUT" "0202000A" "default gateway"
ok "modprobe overlay, static address"

expect_exit 0 kina-vm exec sd -- sh -c 'echo written-before-stop > /var/tmp/note; cat /proc/sys/kernel/random/boot_id /etc/machine-id'
FIRST=$OUT
expect_exit 0 kina-vm stop sd --timeout 60s
assert_eq "$(jq_field "$OUT" .state)" "exited"
assert_eq "$(jq_field "$OUT" .reason)" "stopped"
assert_not_contains "$ERR" "by force" "stop"
expect_exit 0 kina-vm logs sd
assert_contains "$OUT" "reboot: Power down"
ok "clean stop"

expect_exit 0 kina-vm start sd --timeout 600s --ready systemd
assert_eq "$(jq_field "$OUT" .ready)" "systemd" "start --ready systemd"
track_pid "$(cat "$(jq_field "$OUT" .dir)/supervisor.pid")"
state=$(guest_state sd)
case "$state" in running|degraded) ;; *) fail "systemctl is-system-running right after start: '$state'" ;; esac
expect_exit 0 kina-vm exec sd -- sh -c 'cat /var/tmp/note /proc/sys/kernel/random/boot_id /etc/machine-id'
assert_eq "$(printf '%s\n' "$OUT" | sed -n 1p)" "written-before-stop" "file after start"
[ "$(printf '%s\n' "$OUT" | sed -n 2p)" != "$(printf '%s\n' "$FIRST" | sed -n 1p)" ] || fail "start did not boot again (same boot_id)"
assert_eq "$(printf '%s\n' "$OUT" | sed -n 3p)" "$(printf '%s\n' "$FIRST" | sed -n 2p)" "machine-id after start"
expect_exit 0 kina-vm stop sd --timeout 60s
assert_eq "$(jq_field "$OUT" .reason)" "stopped"
expect_exit 0 kina-vm rm sd
assert_eq "$(leftovers)" "" "processes left"
ok "start --ready systemd: $state again, file and machine-id kept; stop, rm"
