# vm-interrupt: SIGINT, SIGTERM or SIGHUP during `kina-vm boot` stops the
# supervisor and QEMU it started, releases the address and removes the
# machine directory; after kill -9 of a boot, the next ls (or boot) sweeps
# what it left. Waits poll for the state, never sleep a fixed time.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

fetch_kernel
make_rootfs "$TEST_TMP/rootfs"
expect_exit 0 kina-vm network create net1 --cluster c1 --subnet 10.78.0.0/24
track_pid "$(cat "$KINA_HOME/clusters/c1/networks/net1/switch.pid")"
MACHINES=$KINA_HOME/clusters/c1/machines
LEASES=$KINA_HOME/clusters/c1/networks/net1/leases

# start_boot NAME: a boot in the background with default signal dispositions
# (a non-interactive shell would start it ignoring SIGINT); pid in BOOT_PID.
start_boot() {
  python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP): signal.signal(s, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' kina-vm boot --name "$1" --cluster c1 --network net1 --accel tcg --timeout 300s \
    --rootfs "$TEST_TMP/rootfs" -- "${IDLE[@]}" </dev/null >"$TEST_TMP/$1.out" 2>"$TEST_TMP/$1.err" &
  BOOT_PID=$!
  track_pid "$BOOT_PID"
}
# wait_for CMD...: polls CMD until it succeeds (600 s at most).
wait_for() {
  local i
  for ((i = 0; i < 12000; i++)); do "$@" && return 0; sleep 0.05; done
  fail "timed out waiting for: $*"
}
# Started: the supervisor wrote its pid and QEMU is up (its lease is taken).
started() { [ -s "$MACHINES/$1/supervisor.pid" ] && [ -s "$MACHINES/$1/qemu.pid" ]; }
# running PID: alive and not a zombie (nothing may reap at once in a container).
running() { [ -e "/proc/$1/stat" ] && ! sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | grep -q '^[ZX]'; }
# machine_gone NAME PIDS...: no process of NAME, no directory, no lease.
machine_gone() {
  local name=$1 pid; shift
  for pid in "$@"; do
    ! running "$pid" || fail "$name: process $pid ($(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null)) is still running"
  done
  assert_eq "$(ps -eo args | grep -F "$MACHINES/$name" | grep -v grep || true)" "" "$name: processes left"
  [ ! -e "$MACHINES/$name" ] || fail "$name: the machine directory is still there: $(ls -A "$MACHINES/$name")"
  ! grep -q " $name\$" "$LEASES" 2>/dev/null || fail "$name: its lease is still there: $(cat "$LEASES")"
}

for sig in INT TERM HUP; do
  name=i-$(echo "$sig" | tr A-Z a-z)
  start_boot "$name"
  wait_for started "$name"
  sup=$(cat "$MACHINES/$name/supervisor.pid") qemu=$(cat "$MACHINES/$name/qemu.pid")
  grep -q " $name\$" "$LEASES" || fail "$name: no lease while booting"
  kill -"$sig" "$BOOT_PID"
  rc=0; wait "$BOOT_PID" || rc=$?
  [ "$rc" -ne 0 ] || fail "$name: an interrupted boot exited 0"
  machine_gone "$name" "$sup" "$qemu"
  ok "SIG$sig during boot: exit $rc, $(tail -n 1 "$TEST_TMP/$name.err")"
done

# kill -9: nothing can clean up then; the next ls sweeps it.
start_boot k9
wait_for started k9
sup=$(cat "$MACHINES/k9/supervisor.pid") qemu=$(cat "$MACHINES/k9/qemu.pid")
kill -KILL "$BOOT_PID"
wait "$BOOT_PID" || true
[ -d "$MACHINES/k9" ] || fail "the killed boot left no directory to sweep"
expect_exit 0 kina-vm ls --cluster c1
assert_eq "$OUT" "" "ls after the sweep"
machine_gone k9 "$sup" "$qemu"
ok "kill -9 of a boot: the next ls sweeps its supervisor, QEMU, lease and directory"

# The next boot sweeps too, and a completed boot is never swept.
start_boot k9b
wait_for started k9b
kill -KILL "$BOOT_PID"
wait "$BOOT_PID" || true
boot_vm ok1 --cluster c1 --network net1 --rootfs "$TEST_TMP/rootfs" -- "${IDLE[@]}"
[ ! -e "$MACHINES/k9b" ] || fail "boot did not sweep the killed boot's directory"
[ ! -e "$MACHINES/ok1/booting" ] || fail "a completed boot kept its booting marker"
expect_exit 0 kina-vm ls --cluster c1
assert_eq "$(jq_field "$OUT" '[.name,.state]|join(" ")')" "ok1 running" "a completed boot survives ls"
ok "the next boot sweeps; a completed boot is kept"

# Pid checks are exact: machine `ok` whose pid files name the processes of
# `ok1` (as after pid reuse) is not running, and rm -f of it leaves ok1 alone.
mkdir "$MACHINES/ok"
jq -c '.name = "ok"' "$MACHINES/ok1/machine.json" > "$MACHINES/ok/machine.json"
cp "$MACHINES/ok1/supervisor.pid" "$MACHINES/ok1/qemu.pid" "$MACHINES/ok/"
expect_exit 0 kina-vm inspect ok --cluster c1
assert_eq "$(jq_field "$OUT" .state)" "exited" "state of a machine whose pids belong to another"
expect_exit 0 kina-vm rm -f ok --cluster c1
expect_exit 0 kina-vm exec ok1 --cluster c1 -- echo still here
assert_eq "$OUT" "still here" "ok1 after rm -f ok"
ok "pid checks: machine ok is not ok1"
expect_exit 0 kina-vm rm -f ok1 --cluster c1
expect_exit 0 kina-vm network rm net1 --cluster c1
assert_eq "$(leftovers)" "" "processes at the end"
