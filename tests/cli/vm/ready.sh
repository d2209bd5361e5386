# vm-ready: boot --ready systemd when systemd does not get there. A oneshot
# unit that never ends holds the boot in "starting": past --timeout the boot
# fails (69) with the console's tail and systemd's pending jobs on stderr,
# and nothing is left. Booted into emergency mode ("maintenance") it fails
# at once with the state named. A root without udev gets there (kina-init
# masks the serial getty that would wait for dev-ttyS0.device). --ready
# systemd with a workload that is not systemd fails, SIGTERM while boot
# waits for systemd removes the machine (143), and a bad --ready value is a
# usage error.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

expect_exit 64 kina-vm boot --name x --ready later --rootfs /nonexistent
assert_contains "$ERR" "--ready"
ok "--ready later refused"

R="$TEST_TMP/rootfs"
systemd_rootfs "$R"
fetch_kernel
cat > "$R/etc/systemd/system/block.service" <<'EOF'
[Unit]
Description=holds the boot forever
Before=multi-user.target
[Service]
Type=oneshot
ExecStart=/bin/sleep infinity
TimeoutStartSec=infinity
[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -s /etc/systemd/system/block.service "$R/etc/systemd/system/multi-user.target.wants/block.service"
# Emergency mode waits at its prompt on the console (root without a password).
sed -i 's/^root:[^:]*:/root::/' "$R/etc/shadow"

expect_exit 69 kina-vm boot --name blocked --accel tcg --rootfs "$R" --memory 768Mi --ready systemd --timeout 120s </dev/null
assert_eq "$OUT" "" "stdout"
assert_contains "$ERR" "kina-vm: error: booting blocked: systemd did not reach running or degraded within 120s"
assert_contains "$ERR" "its last answer: starting"
assert_contains "$ERR" "console: "
assert_contains "$ERR" "block.service" "the pending jobs"
assert_eq "$(kina-vm ls)" "" "machines left"
assert_eq "$(ls "$KINA_HOME/clusters/default/machines")" "" "machine directories left"
assert_eq "$(leftovers)" "" "processes left"
ok "held in starting: 69 past --timeout, console tail and jobs shown, nothing left"

# SIGTERM while boot waits for systemd (the agent has answered): the
# machine is stopped and removed, and boot exits 143.
python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP): signal.signal(s, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' kina-vm boot --name waiting --accel tcg --rootfs "$R" --memory 768Mi \
  --ready systemd --timeout 900s </dev/null >"$TEST_TMP/waiting.out" 2>"$TEST_TMP/waiting.err" &
BOOT_PID=$!
track_pid "$BOOT_PID"
for ((i = 0; i < 12000; i++)); do [ -e "$KINA_HOME/clusters/default/machines/waiting/ready" ] && break; sleep 0.05; done
[ -e "$KINA_HOME/clusters/default/machines/waiting/ready" ] || fail "the agent of 'waiting' never answered"
kill -TERM "$BOOT_PID"
rc=0
wait "$BOOT_PID" || rc=$?
assert_eq "$rc" "143" "boot's exit after SIGTERM"
assert_contains "$(cat "$TEST_TMP/waiting.err")" "interrupted by SIGTERM"
assert_eq "$(cat "$TEST_TMP/waiting.out")" "" "stdout"
assert_eq "$(ls "$KINA_HOME/clusters/default/machines")" "" "machine directories left"
assert_eq "$(leftovers)" "" "processes left"
ok "SIGTERM while waiting for systemd: 143, nothing left"

expect_exit 69 kina-vm boot --name rescue --accel tcg --rootfs "$R" --memory 768Mi --ready systemd --timeout 900s \
  --kernel-arg systemd.unit=emergency.target </dev/null
assert_contains "$ERR" "kina-vm: error: booting rescue: systemd is in state \"maintenance\""
assert_contains "$ERR" "console: "
assert_eq "$(ls "$KINA_HOME/clusters/default/machines")" "" "machine directories left"
assert_eq "$(leftovers)" "" "processes left"
ok "emergency mode: 69 at once, state named"

# A systemd root without udev: dev-ttyS0.device never appears, so kina-init
# masks serial-getty@ttyS0 for the boot and systemd gets to running/degraded.
N="$TEST_TMP/noudev"
systemd_rootfs "$N"
rm -f "$N/lib/systemd/systemd-udevd" "$N/bin/udevadm" "$N"/lib/systemd/system/systemd-udev* \
  "$N/lib/systemd/system/udev.service" "$N"/lib/systemd/system/*.wants/systemd-udev*
BOOT_TIMEOUT=900s boot_vm noudev --rootfs "$N" --memory 768Mi --ready systemd
assert_eq "$(jq_field "$OUT" .ready)" "systemd"
state=$(guest_state noudev)
case "$state" in running|degraded) ;; *) fail "no udev: systemctl is-system-running right after boot: '$state'" ;; esac
expect_exit 0 kina-vm exec noudev -- readlink /run/systemd/system/serial-getty@ttyS0.service
assert_eq "$OUT" "/dev/null" "the runtime mask"
getty=$(kina-vm exec noudev -- systemctl is-enabled serial-getty@ttyS0.service 2>/dev/null || true)
assert_eq "$getty" "masked-runtime" "serial-getty@ttyS0"
expect_exit 0 kina-vm rm -f noudev
ok "no udev: the serial getty masked for the boot, systemd $state"

make_rootfs "$TEST_TMP/busybox"
expect_exit 69 kina-vm boot --name plain --accel tcg --rootfs "$TEST_TMP/busybox" --ready systemd --timeout 120s \
  -- "${IDLE[@]}" </dev/null
assert_contains "$ERR" "systemctl cannot be run in the guest"
assert_eq "$(ls "$KINA_HOME/clusters/default/machines")" "" "machine directories left"
assert_eq "$(leftovers)" "" "processes left"
ok "a workload without systemd: 69"
