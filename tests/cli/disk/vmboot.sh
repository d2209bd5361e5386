#!/usr/bin/env bash
# full-disk-vm: kina-vm's writing commands on a real full disk (disklib.sh:
# KINA_HOME on a tmpfs, K free pages before each run, K growing until the
# command succeeds): boot with the kernel's modules disk and the root's base
# disk still to build, boot again with both built; running machines on a
# full disk (their consoles, a write to their disks: paused, resumed); cp
# out of a guest; a stop with writes to flush, then a start (a boot or a
# start with less than 64 MiB free is refused before QEMU starts). Each failed run must exit 73 or 74 with one error line
# naming "No space left on device", print no record, leave every file as it
# was (no machine directory, the address given back to the network's leases,
# no temporary) and no process of the machine; the run that succeeds must
# leave a machine that runs and answers.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"
source "$KINA_SRC/tests/cli/disk/disklib.sh"
command -v vde_switch >/dev/null || { echo "skip: no vde_switch (vde2)"; exit 77; }

# The kernel is fetched into a home off the tmpfs (its modules directory is
# large) and registered by path in the tmpfs home.
export KINA_HOME="$TEST_TMP/khome"
mkdir -m 0700 "$KINA_HOME"
fetch_kernel
KPATH=$(jq_field "$OUT" .path)
KMODS=$(jq_field "$OUT" .modules)
disk_setup 256m
# (kina-vm kernel --fetch on a full disk: full-disk-create-qemu)
expect_exit 0 kina-vm kernel --kernel "$KPATH" --modules "$KMODS"
make_rootfs "$TEST_TMP/rootfs"
expect_exit 0 kina-vm network create net1 --cluster c1
track_pid "$(cat "$KINA_HOME/clusters/c1/networks/net1/switch.pid")"
M="$KINA_HOME/clusters/c1/machines"

# The two shared disks a boot builds, the kernel's modules disk and the
# root's base disk, are caches: a boot that fails after building one keeps
# it, complete under its final name (the next boot uses it). The snapshot
# leaves exactly those two names out; each failure checks that what is
# there under them is a whole ext4 file system, and the snapshot still shows
# any temporary of theirs.
CACHES='^home/(disks/base-[0-9a-f]{32}|kernel/[^/]+/modules)[.]ext4$'
SNAP_SKIP=$CACHES
# running M...: the machines that run while the next command is swept; their
# overlay and console change as their guests write, and their supervisor
# logs when QEMU pauses a guest on the full disk and resumes it (and marks it
# paused meanwhile), so the snapshot leaves those files of theirs out
# (everything else still counts).
RUNNING=
running() {
  RUNNING="$*"
  SNAP_SKIP="$CACHES|^home/clusters/c1/machines/(${RUNNING// /|})/(disk[.]qcow2|console[.]log|supervisor[.]log|paused)\$"
}
# After each failure: no process of a machine other than the ones in
# RUNNING (the switch is the network's), and any cache disk whole.
no_process_left() {
  local left n; left=$(leftovers | grep -v vde_switch || true)
  for n in $RUNNING; do left=$(grep -Ev "/machines/$n(/| |\$)|-name kina:c1/$n " <<<"$left" || true); done
  [ -z "$left" ] || fail "$1: processes left: $left"
  disks_whole "$1" "$KINA_HOME"/disks/base-*.ext4 "$KINA_HOME"/kernel/*/modules.ext4
}
# booted NAME: the record says running, and the guest answers.
booted() {
  [ "$(jq -r .state < "$TEST_TMP/out")" = running ] || return 1
  track_pid "$(cat "$M/$1/supervisor.pid")"
  [ "$(kina-vm exec --cluster c1 "$1" -- /bin/echo up)" = up ]
}
boot() {
  kina-vm boot --name "$1" --cluster c1 --network net1 --accel tcg --timeout 300s \
    --rootfs "$TEST_TMP/rootfs" -- "${IDLE[@]}" </dev/null
}
SWEEP_GROW=geometric SWEEP_FAILED=no_process_left

booted_m1() { booted m1 && [ -s "$KINA_HOME/kernel/$KERNEL_VERSION/modules.ext4" ] && ls "$KINA_HOME"/disks/base-*.ext4 >/dev/null; }
sweep "kina-vm boot (modules and base disks to build)" booted_m1 boot m1
# The same with both disks built: the failures land in the machine's own
# files (its overlay, initramfs, spec, logs) instead.
booted_m2() { booted m2; }
running m1
sweep "kina-vm boot (disks built)" booted_m2 boot m2

# qmp_status NAME: QEMU's run state of machine NAME ("running", "io-error"...).
qmp_status() {
  python3 - "$M/$1/qmp.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
def answer():
    while True:
        m = json.loads(f.readline())
        if "return" in m or "error" in m:
            return m
f.readline()
f.write('{"execute":"qmp_capabilities"}\n'); f.flush(); answer()
f.write('{"execute":"query-status"}\n'); f.flush(); print(answer()["return"]["status"])
PY
}

# Running machines on a full disk. Their guests were running through the
# sweeps above, on a full disk many times: one that QEMU paused then (a
# write to its disk failed) runs again now that there is room.
for n in m1 m2; do
  for _ in $(seq 20); do [ "$(qmp_status $n)" = running ] && break; sleep 1; done
  assert_eq "$(qmp_status $n)" running "QEMU's state of $n once there is room"
done
expect_exit 0 kina-vm exec --cluster c1 m1 -- sync
# The guest writes 1 MiB to its console: the supervisor drops what it cannot
# write and reads on, so the guest does not stall (the exec ends, the next
# one answers); once there is room the console says how much was lost.
fill 0
expect_exit 0 timeout 300 kina-vm exec --cluster c1 m1 -- sh -c 'head -c 1048576 /dev/zero | tr "\0" z > /dev/ttyS0'
expect_exit 0 timeout 120 kina-vm exec --cluster c1 m1 -- /bin/echo still-up
assert_eq "$OUT" still-up
ok "a running machine's console on a full disk: dropped, the guest not stalled"
# The guest writes to its disk: QEMU pauses it (the overlay cannot grow); it
# resumes by itself once there is room, and the write completes.
kina-vm exec --cluster c1 m1 -- sh -c 'dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null && sync && echo written' \
  >"$TEST_TMP/dd.out" 2>"$TEST_TMP/dd.err" &
dd_pid=$!
for _ in $(seq 120); do [ "$(qmp_status m1)" = io-error ] && break; sleep 1; done
assert_eq "$(qmp_status m1)" io-error "QEMU's state of m1 after a disk write on a full disk"
kill -0 "$dd_pid" 2>/dev/null || fail "the guest's write ended while the host disk was full: $(cat "$TEST_TMP/dd.err")"
# inspect says so (the supervisor sees it within its 3 s check).
for _ in $(seq 50); do [ -e "$M/m1/paused" ] && break; sleep 0.2; done
expect_exit 0 kina-vm inspect --cluster c1 m1
assert_eq "$(jq_field "$OUT" .state)" running
assert_contains "$(jq_field "$OUT" .paused)" "a write to its disk failed on the host"
rm -f "$FS/filler"
rc=0; timeout 300 tail --pid="$dd_pid" -f /dev/null || rc=$?
[ "$rc" = 0 ] || fail "the guest's write did not complete once there was room"
wait "$dd_pid" || fail "the guest's write failed: $(cat "$TEST_TMP/dd.err")"
assert_eq "$(cat "$TEST_TMP/dd.out")" written
assert_eq "$(qmp_status m1)" running
for _ in $(seq 50); do [ ! -e "$M/m1/paused" ] && break; sleep 0.2; done
assert_eq "$(kina-vm inspect --cluster c1 m1 | jq -r '.paused // "no"')" no "inspect's paused once m1 runs again"
assert_contains "$(cat "$M/m1/supervisor.log")" "QEMU paused the guest: a write to its disk failed on the host"
assert_contains "$(cat "$M/m1/supervisor.log")" "the guest runs again"
expect_exit 0 kina-vm exec --cluster c1 m1 -- sh -c 'rm /big; echo after-the-full-disk > /dev/ttyS0'
for _ in $(seq 50); do grep -q after-the-full-disk "$M/m1/console.log" && break; sleep 0.2; done
assert_contains "$(cat "$M/m1/console.log")" "bytes of console output lost: No space left on device]"
assert_contains "$(cat "$M/m1/console.log")" "after-the-full-disk"
ok "a running machine's disk write on a full disk: paused, resumed once there is room; the console says what it lost"

# cp out of a guest onto the full file system: a tree (files, a directory,
# a symlink) from the guest's /run (a tmpfs there, so that the guest's own
# disk takes no write while the host's is full).
expect_exit 0 kina-vm exec --cluster c1 m1 -- sh -c 'mkdir -p /run/t/sub && cd /run/t &&
  for i in 1 2 3 4 5 6 7 8 9 10; do head -c $((i * 6000)) /dev/urandom > f$i; done &&
  head -c 70000 /dev/urandom > sub/big && echo small > sub/small && ln -s sub/big link && md5sum f* sub/*'
want=$OUT
copied() {
  [ "$(cd "$HOME/t" && md5sum f* sub/*)" = "$want" ] && [ "$(readlink "$HOME/t/link")" = sub/big ]
}
running m1 m2
sweep "kina-vm cp out of a guest" copied kina-vm cp --cluster c1 m1:/run/t "$HOME/t"
rm -rf "${HOME:?}/t"

# stop on a full disk, its guest with writes to flush: the poweroff's last
# writes fail, QEMU pauses the guest (stop says so), stop ends it by force
# at its timeout. The end is recorded all the same (exit.json is written
# into room taken when the run began), and nothing of the run is left.
expect_exit 0 kina-vm exec --cluster c1 m2 -- sh -c 'dd if=/dev/zero of=/x bs=1M count=4 2>/dev/null; echo dirty'
fill 0
expect_exit 0 kina-vm stop --cluster c1 m2 --timeout 20s
rm -f "$FS/filler"
assert_contains "$ERR" "m2 is paused: a write to its disk failed on the host"
assert_eq "$(jq_field "$OUT" .state)" exited
assert_eq "$(jq_field "$OUT" .reason)" "stopped (forced)"
assert_contains "$(cat "$M/m2/exit.json")" '"reason":"stopped (forced)"'
for f in ready ctl.sock agent.sock qmp.sock console.fifo paused exit.reserve; do
  [ ! -e "$M/m2/$f" ] || fail "a stop on a full disk left $f"
done
expect_exit 0 kina-audit verify
ok "kina-vm stop on a full disk: paused guest stopped by force, its end recorded, nothing of the run left"

# start on a full disk: refused, the stopped machine's files as they were
# (its console not moved, exit.json and machine.json unchanged), until
# there is room; then it runs.
running m1
started_m2() {
  [ "$(jq -r .state < "$TEST_TMP/out")" = running ] || return 1
  track_pid "$(cat "$M/m2/supervisor.pid")"
  [ "$(kina-vm exec --cluster c1 m2 -- /bin/echo up)" = up ]
}
sweep "kina-vm start" started_m2 kina-vm start --cluster c1 m2 --timeout 300s </dev/null

expect_exit 0 kina-vm rm -f --cluster c1 m1
expect_exit 0 kina-vm rm -f --cluster c1 m2
expect_exit 0 kina-vm network rm --cluster c1 net1
no_process_left "at the end"
