# vm-mounts: --mount on several machines at once (each machine's virtiofsd
# has its own socket and no system-wide pid file), a read-only mount of /,
# and a failed boot that shows the supervisor's last lines.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

fetch_kernel
make_rootfs "$TEST_TMP/rootfs"
mkdir -p "$TEST_TMP/s1" "$TEST_TMP/s2"
echo one > "$TEST_TMP/s1/f"
echo two > "$TEST_TMP/s2/f"

# Two machines with --mount booted at the same time.
boot_bg() {
  local name=$1; shift
  kina-vm boot --name "$name" --accel tcg --timeout 300s --rootfs "$TEST_TMP/rootfs" "$@" -- "${IDLE[@]}" \
    </dev/null >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err" &
}
boot_bg m1 --mount "$TEST_TMP/s1:/mnt/s"
p1=$!
boot_bg m2 --mount "$TEST_TMP/s2:/mnt/s" --mount "$TEST_TMP/s1:/mnt/t:ro"
p2=$!
rc1=0 rc2=0
wait "$p1" || rc1=$?
wait "$p2" || rc2=$?
for m in m1 m2; do
  if [ -s "$TEST_TMP/$m.out" ]; then track_pid "$(cat "$(jq_field "$(cat "$TEST_TMP/$m.out")" .dir)/supervisor.pid")"; fi
done
[ "$rc1" -eq 0 ] || fail "boot m1 at the same time as m2: exit $rc1: $(cat "$TEST_TMP/m1.err")"
[ "$rc2" -eq 0 ] || fail "boot m2 at the same time as m1: exit $rc2: $(cat "$TEST_TMP/m2.err")"
expect_exit 0 kina-vm exec m1 -- cat /mnt/s/f
assert_eq "$OUT" "one" "m1's mount"
expect_exit 0 kina-vm exec m2 -- cat /mnt/s/f /mnt/t/f
assert_eq "$OUT" "$(printf 'two\none')" "m2's mounts"
ok "two machines with --mount at once"

# A read-only mount of the host's / (its /var/run read-only too).
boot_vm m3 --rootfs "$TEST_TMP/rootfs" --mount /:/host:ro -- "${IDLE[@]}"
expect_exit 0 kina-vm exec m3 -- cat "/host$TEST_TMP/s1/f"
assert_eq "$OUT" "one" "the host's / in the guest"
expect_exit 1 kina-vm exec m3 -- sh -c "echo x > /host$TEST_TMP/s1/g"
assert_contains "$ERR" "Read-only file system"
[ ! -e "$TEST_TMP/s1/g" ] || fail "a write through --mount /:/host:ro reached the host"
ok "--mount /:/host:ro"

for m in m1 m2 m3; do expect_exit 0 kina-vm rm -f "$m"; done
assert_eq "$(leftovers)" "" "processes after rm"

# A boot that fails in the supervisor's hands: its last lines are shown
# before the machine directory (and its supervisor.log) is removed.
mkdir -p "$TEST_TMP/fakebin"
printf '#!/bin/sh\necho "fake qemu refuses to start" >&2\nexit 3\n' > "$TEST_TMP/fakebin/qemu-system-x86_64"
chmod +x "$TEST_TMP/fakebin/qemu-system-x86_64"
PATH="$TEST_TMP/fakebin:$PATH" expect_exit 69 kina-vm boot --name bad --accel tcg --timeout 120s \
  --rootfs "$TEST_TMP/rootfs" --mount "$TEST_TMP/s1:/mnt/s" -- "${IDLE[@]}" </dev/null
assert_contains "$ERR" "kina-vm: supervisor: "
assert_contains "$ERR" "started virtiofsd for $TEST_TMP/s1"
assert_contains "$ERR" "QEMU exited with status 3"
[ ! -e "$KINA_HOME/clusters/default/machines/bad" ] || fail "the failed boot left its directory"
assert_eq "$(leftovers)" "" "processes after the failed boot"
ok "a failed boot shows the supervisor's last lines"
