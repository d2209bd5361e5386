# vm-start: `kina-vm start` brings a stopped machine back as it was booted:
# what was written in the guest survives (same overlay disk), same address,
# MACs, machine-id and product UUID, published port, mount, CPUs and memory;
# exec works. A running
# machine is left alone (exit 0, its record); a missing one is 66; a second
# start while one runs is 75; an address taken meanwhile is 73; a network
# switch that died is started again; a failed,
# interrupted (SIGTERM) or killed (kill -9, swept by ls) start leaves the
# machine stopped, never removed, and a later start works. Waits poll for
# states, never sleep a fixed time.
source "$KINA_CLI_LIB"
source "$KINA_VM_TESTLIB"

fetch_kernel
make_rootfs "$TEST_TMP/rootfs"
mkdir -p "$TEST_TMP/rootfs/www"
echo "hello from the guest" > "$TEST_TMP/rootfs/www/index.html"
expect_exit 0 kina-vm network create net1 --cluster c1 --subnet 10.79.0.0/24
track_pid "$(cat "$KINA_HOME/clusters/c1/networks/net1/switch.pid")"
MACHINES=$KINA_HOME/clusters/c1/machines
DIR=$MACHINES/m1
LEASES=$KINA_HOME/clusters/c1/networks/net1/leases
PORT=$(free_port)
SHARED=$TEST_TMP/shared
mkdir -p "$SHARED"
BOOT_TIMEOUT=300s boot_vm m1 --cluster c1 --network net1 --rootfs "$TEST_TMP/rootfs" --cpus 2 --memory 384Mi \
  --mount "$SHARED:/data" --publish "127.0.0.1:$PORT:80" -- /bin/sh -c 'httpd -p 80 -h /www; while :; do sleep 3600; done'
IP=$(jq_field "$OUT" .ip)
assert_eq "$IP" "10.79.0.2" "address at boot"

# identity: machine-id, product UUID, the MACs of both NICs, the cluster address.
identity() {
  expect_exit 0 kina-vm exec m1 -- sh -c \
    'cat /etc/machine-id /sys/class/dmi/id/product_uuid /sys/class/net/eth0/address /sys/class/net/eth1/address; ip -4 -o addr show eth1 | sed "s/.* inet \([^ ]*\) .*/\1/"'
  printf '%s\n' "$OUT"
}
BEFORE=$(identity)
[ "$(printf '%s\n' "$BEFORE" | wc -l)" -eq 5 ] || fail "identity: $BEFORE"
expect_exit 0 kina-vm exec m1 -- sh -c 'echo kept-across-restart > /root/note && sync'

# The published port reaches the workload's httpd (started again by the workload on start).
port_answers() { [ "$(curl -s --max-time 5 "http://127.0.0.1:$PORT/index.html" 2>/dev/null || true)" = "hello from the guest" ]; }
wait_for 300 "the published port to answer after boot" port_answers

stopped() { [ "$(kina-vm inspect m1 --cluster c1 | jq -r .state)" = exited ]; }
stop_m1() {
  expect_exit 0 kina-vm stop m1 --cluster c1 --timeout 60s
  assert_eq "$(jq_field "$OUT" .state)" "exited" "state after stop"
}
# start_m1 ARGS: a start that works; the new supervisor is tracked.
start_m1() {
  expect_exit 0 kina-vm start m1 --cluster c1 --timeout 300s "$@"
  check_records Machine "$OUT"
  assert_eq "$(jq_field "$OUT" .state)" "running" "state after start"
  assert_eq "$(jq_field "$OUT" .ip)" "$IP" "address after start"
  track_pid "$(cat "$DIR/supervisor.pid")"
}
# m1's QEMU: its name, and a path in this home (its -kernel; it runs in
# $DIR and names that nowhere). Another test running beside this one may
# have a c1/m1 of its own.
M1_QEMU="kina:c1/m1 .*$KINA_HOME/"
# disk_kept: the machine is stopped, its directory and disk are there, its lease kept.
disk_kept() {
  stopped || fail "not stopped: $(kina-vm inspect m1 --cluster c1)"
  [ -s "$DIR/disk.qcow2" ] && [ -s "$DIR/machine.json" ] || fail "the machine's files are gone: $(ls -A "$DIR" 2>&1)"
  grep -qx "$IP m1" "$LEASES" || fail "the lease of m1 is gone: $(cat "$LEASES")"
  [ ! -e "$DIR/starting" ] || fail "the starting marker was left"
  assert_eq "$(ps -eo args | grep -e "$M1_QEMU" -e "$DIR" -e "source=$SHARED" | grep -v grep || true)" "" \
    "processes of m1 (supervisor, QEMU, virtiofsd) left"
}

stop_m1
grep -qx "$IP m1" "$LEASES" || fail "stop released the lease: $(cat "$LEASES")"
start_m1
OUT_START=$OUT
pid1=$(jq_field "$OUT" .pid)
expect_exit 0 kina-vm exec m1 -- cat /root/note
assert_eq "$OUT" "kept-across-restart" "file written before stop"
assert_eq "$(identity)" "$BEFORE" "machine-id, product UUID, MACs and address after start"
assert_eq "$(jq -c '[.cpus, .memoryMiB, .mounts]' <<<"$OUT_START")" "[2,384,[\"$SHARED:/data\"]]" "cpus, memory, mounts after start"
expect_exit 0 kina-vm exec m1 -- sh -c 'grep -c ^processor /proc/cpuinfo; echo from-the-guest > /data/g'
assert_eq "$OUT" "2" "CPUs in the guest after start"
assert_eq "$(cat "$SHARED/g")" "from-the-guest" "the mount after start"
[ -s "$DIR/console.previous.log" ] || fail "the console of the first run was not kept"
wait_for 300 "the published port to answer after start" port_answers
ok "stop, start: file, address, machine-id, UUID, MACs, published port, mount, CPUs kept; exec works"

# A running machine is left alone: exit 0, its record, same QEMU.
expect_exit 0 kina-vm start m1 --cluster c1
assert_eq "$(jq_field "$OUT" .state)" "running" "start of a running machine"
assert_eq "$(jq_field "$OUT" .pid)" "$pid1" "QEMU pid after a start of a running machine"
expect_exit 66 kina-vm start nosuch --cluster c1
assert_contains "$ERR" "kina-vm: error: machine nosuch"
expect_exit 66 kina-vm start nosuch
expect_exit 64 kina-vm start 'Bad!'
expect_exit 64 kina-vm start m1 --timeout 0s
ok "start of a running machine is a no-op; missing 66, bad input 64"

# bg_start: a start in the background with default signal dispositions; pid in START_PID.
bg_start() {
  python3 -c 'import os, signal, sys
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP): signal.signal(s, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' kina-vm start m1 --cluster c1 --timeout 300s "$@" </dev/null \
    >"$TEST_TMP/start.out" 2>"$TEST_TMP/start.err" &
  START_PID=$!
  track_pid "$START_PID"
}
# The start runs QEMU: its marker is there and qemu.pid names the live QEMU of
# m1 (the stopped run's pid files are still there until the start removes them).
qemu_up() {
  [ -e "$DIR/starting" ] || return 1
  local q
  q=$(pgrep -f "$M1_QEMU" | head -n 1 || true)
  [ -n "$q" ] && [ "$(cat "$DIR/qemu.pid" 2>/dev/null || true)" = "$q" ] && [ -s "$DIR/supervisor.pid" ]
}

# A second start while one runs is locked out (75); the first one completes.
stop_m1
bg_start
wait_for 300 "the first start to launch QEMU" qemu_up
track_pid "$(cat "$DIR/supervisor.pid")"
expect_exit 75 kina-vm start m1 --cluster c1
rc=0; wait "$START_PID" || rc=$?
assert_eq "$rc" "0" "the first start's exit ($(cat "$TEST_TMP/start.err"))"
assert_eq "$(jq -r .state "$TEST_TMP/start.out")" "running" "the first start's record"
ok "a start while another runs: 75"

# SIGTERM during start: 143, the machine stopped again, nothing removed.
stop_m1
bg_start
wait_for 300 "the start to launch QEMU" qemu_up
sup=$(cat "$DIR/supervisor.pid")
track_pid "$sup"
kill -TERM "$START_PID"
rc=0; wait "$START_PID" || rc=$?
assert_eq "$rc" "143" "exit of a start interrupted by SIGTERM ($(cat "$TEST_TMP/start.err"))"
assert_contains "$(cat "$TEST_TMP/start.err")" "left stopped"
disk_kept
start_m1
expect_exit 0 kina-vm exec m1 -- cat /root/note
assert_eq "$OUT" "kept-across-restart" "file after an interrupted start"
ok "SIGTERM during start: 143, machine stopped with its disk, a later start works"

# kill -9 during start: the next ls sweeps it back to stopped (not removed).
stop_m1
bg_start
wait_for 300 "the start to launch QEMU" qemu_up
sup=$(cat "$DIR/supervisor.pid") qemu=$(cat "$DIR/qemu.pid")
track_pid "$sup"
kill -KILL "$START_PID"
wait "$START_PID" || true
expect_exit 0 kina-vm ls --cluster c1
assert_eq "$(jq_field "$OUT" .name)" "m1" "ls after kill -9 of start"
assert_eq "$(jq_field "$OUT" .state)" "exited" "state in ls after kill -9 of start"
assert_contains "$(jq_field "$OUT" .reason)" "start command died"
for p in "$sup" "$qemu"; do
  [ ! -e "/proc/$p/stat" ] || sed 's/.*) //' "/proc/$p/stat" | grep -q '^[ZX]' || fail "process $p of the killed start still runs"
done
disk_kept
start_m1
expect_exit 0 kina-vm exec m1 -- cat /root/note
assert_eq "$OUT" "kept-across-restart" "file after a killed start"
assert_eq "$(identity)" "$BEFORE" "identity after a killed start and a new one"
ok "kill -9 during start: ls leaves it stopped, a later start works"

# kill -9 during start, then stop (before any sweep): a clean stop; the killed
# start's marker goes with it, so a later ls does not touch the machine.
stop_m1
bg_start
wait_for 300 "the start to launch QEMU" qemu_up
track_pid "$(cat "$DIR/supervisor.pid")"
kill -KILL "$START_PID"
wait "$START_PID" || true
stop_m1
reason=$(jq_field "$OUT" .reason)
assert_contains "$reason" "stopped" "reason of a stop after a killed start"
disk_kept
expect_exit 0 kina-vm ls --cluster c1
assert_eq "$(jq_field "$OUT" .reason)" "$reason" "reason in ls after the stop"
ok "kill -9 during start, then stop: $reason, marker gone"

# A start that fails (--ready systemd on a guest without systemd): 69, stopped, kept.
expect_exit 69 kina-vm start m1 --cluster c1 --timeout 300s --ready systemd
assert_contains "$ERR" "systemctl cannot be run"
assert_contains "$ERR" "left stopped"
disk_kept
assert_contains "$(kina-vm inspect m1 --cluster c1 | jq -r .reason)" "start failed"
ok "a failed start: 69, machine stopped with its disk and lease"

# Its address leased to another machine meanwhile: 73 naming it, still stopped.
cp "$LEASES" "$TEST_TMP/leases"
printf '%s other\n' "$IP" > "$LEASES"
expect_exit 73 kina-vm start m1 --cluster c1
assert_contains "$ERR" "leased to machine other"
stopped || fail "not stopped after a refused start"
cp "$TEST_TMP/leases" "$LEASES"
# A free address (the lease lost) is taken again, exactly the same one.
: > "$LEASES"
start_m1
grep -qx "$IP m1" "$LEASES" || fail "start did not take the address again: $(cat "$LEASES")"
ok "address: another holder 73; a free one taken again"

# QEMU cannot start (its published port taken on the host meanwhile): 69 with
# QEMU's complaint, the machine stopped with its disk; it starts once the port is free.
stop_m1
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
open(sys.argv[2], "w").close(); time.sleep(600)' "$PORT" "$TEST_TMP/listening" &
LISTENER=$!
track_pid "$LISTENER"
wait_for 60 "the port holder" test -e "$TEST_TMP/listening"
expect_exit 69 kina-vm start m1 --cluster c1 --timeout 300s
assert_contains "$ERR" "kina-vm: qemu: "
assert_contains "$ERR" "left stopped"
disk_kept
kill "$LISTENER"
wait "$LISTENER" || true
start_m1
wait_for 300 "the published port to answer after the port was freed" port_answers
ok "QEMU failing to start: 69, machine stopped with its disk; a later start works"

# A host reboot, as far as a test can: the network's vde_switch dies while its
# machines are stopped; the first start runs it again, and both machines
# reach each other at their old addresses.
BOOT_TIMEOUT=300s boot_vm m2 --cluster c1 --network net1 --rootfs "$TEST_TMP/rootfs" -- "${IDLE[@]}"
IP2=$(jq_field "$OUT" .ip)
stop_m1
expect_exit 0 kina-vm stop m2 --cluster c1 --timeout 60s
kill -KILL "$(cat "$KINA_HOME/clusters/c1/networks/net1/switch.pid")"
switch_down() { [ "$(kina-vm network ls --cluster c1 | jq -r .state)" = stopped ]; }
wait_for 60 "the switch to be down" switch_down
start_m1
assert_contains "$ERR" "network net1: its vde_switch was not running; starting it again"
track_pid "$(cat "$KINA_HOME/clusters/c1/networks/net1/switch.pid")"
expect_exit 0 kina-vm start m2 --cluster c1 --timeout 300s
assert_eq "$(jq_field "$OUT" .ip)" "$IP2" "m2's address after start"
track_pid "$(cat "$MACHINES/m2/supervisor.pid")"
assert_not_contains "$ERR" "starting it again" "the second start"
expect_exit 0 kina-vm exec m1 -- ping -c 2 -W 5 "$IP2"
assert_contains "$OUT" "2 packets received"
expect_exit 0 kina-vm rm -f m2 --cluster c1
ok "the network's switch died while stopped: start runs it again; m1 and m2 reach each other"

# rm releases the lease; the audit log has one start event per start.
expect_exit 0 kina-vm rm -f m1 --cluster c1
! grep -q " m1\$" "$LEASES" || fail "rm kept the lease: $(cat "$LEASES")"
expect_exit 0 kina-audit show
n=$(printf '%s\n' "$OUT" | jq -r 'select(.action == "start" and .target == "m1") | .outcome' | sort | uniq -c | tr -s ' ' | sed 's/^ //' | tr '\n' ',')
assert_eq "$n" "6 error,8 ok," "start events (outcome counts)"
expect_exit 0 kina-audit verify
ok "rm releases the address; start events audited"
