# vm-audit: every mutating kina-vm invocation appends exactly one audit event
# with the real outcome and exit code: input errors (an invalid --cluster, an
# unknown flag) included, and exec with the command's own status. Machines
# come from the scripted `container` (tests/cli/vm/apple/): no VM is booted.
source "$KINA_CLI_LIB"
FAKE_DIR=$(cd "$(dirname "$KINA_VM_TESTLIB")/apple" && pwd)
export PATH="$FAKE_DIR:$PATH"
FAKE="$TEST_TMP/fake"
mkdir -p "$FAKE"
printf 'FAKE_CONTAINER_FIXTURE=%q\nFAKE_CONTAINER_STOPPED=\nFAKE_EXEC_STATUS=%q\n' "$FAKE_DIR/list-1.0.json" 0 > "$FAKE/env"
exec_status() { sed -i "s/^FAKE_EXEC_STATUS=.*/FAKE_EXEC_STATUS=$1/" "$FAKE/env"; }

audited 64 "kina-vm boot error 64 -" kina-vm boot --name n1 --cluster 'Bad!' --backend apple --image r@sha256:aa
audited 64 "kina-vm rm error 64 -" kina-vm rm n1 --cluster 'UPPER'
audited 64 "kina-vm exec error 64 -" kina-vm exec n1 --cluster 'a b' -- true
audited 64 "kina-vm network-create error 64 -" kina-vm network create n1 --cluster '-x'
audited 64 "kina-vm boot error 64 default" kina-vm boot --name n1 --no-such-flag
audited 64 "kina-vm network-rm error 64 default" kina-vm network rm
audited 66 "kina-vm stop error 66 default" kina-vm stop nosuch
ok "input errors are recorded, an invalid --cluster too"

audited 0 "kina-vm boot ok 0 c1" kina-vm boot --backend apple --name n1 --cluster c1 --image r@sha256:aa
audited 0 "kina-vm exec ok 0 c1" kina-vm exec n1 -- true
exec_status 7
audited 7 "kina-vm exec error 7 c1" kina-vm exec n1 -- false
exec_status 137
audited 137 "kina-vm exec error 137 c1" kina-vm exec n1 -- sh -c 'kill -9 $$'
exec_status 0
audited 0 "kina-vm stop ok 0 c1" kina-vm stop n1
audited 0 "kina-vm start ok 0 c1" kina-vm start n1
audited 66 "kina-vm start error 66 c1" kina-vm start nosuch --cluster c1
audited 64 "kina-vm start error 64 default" kina-vm start n1 --no-such-flag
ok "exec records the command's status; stop and start are recorded"

# A signal ends a command that does not hold signals itself (here rm, waiting
# for the machine's lock) with its audit event: 128+N, detail signal.
lockf=$KINA_HOME/clusters/c1/machines/n1/lock
flock -o "$lockf" sleep 300 &  # -o: the lock is flock's own, not its sleep's
lpid=$!
track_pid "$lpid"
lock_held() { ! flock -n "$lockf" true; }
wait_for 30 "the test to hold the machine's lock" lock_held
before=$(audit_events)
kina-vm rm -f n1 2> "$TEST_TMP/rm.err" &
rpid=$!
track_pid "$rpid"
opened_lock() { ls -l "/proc/$rpid/fd" 2>/dev/null | grep -q "machines/n1/lock"; }
wait_for 30 "kina-vm rm to wait for the lock" opened_lock
kill -TERM "$rpid"
rc=0; wait "$rpid" || rc=$?
assert_eq "$rc" "143" "exit of rm ended by SIGTERM ($(cat "$TEST_TMP/rm.err"))"
assert_eq "$(audit_events)" "$((before + 1))" "audit events appended by rm ended by SIGTERM"
assert_eq "$(last_audit_event)" "kina-vm rm error 143 c1" "the event of rm ended by SIGTERM"
assert_eq "$(kina-audit show -n 1 | jq -r .details.signal)" "TERM" "its signal detail"
pkill -TERM -P "$lpid" sleep; wait "$lpid" 2>/dev/null || true  # its sleep, then flock ends
audited 0 "kina-vm rm ok 0 c1" kina-vm rm -f n1
ok "a signal ends rm with its audit event (143, signal TERM)"

# Read-only commands and --help record nothing.
before=$(audit_events)
expect_exit 0 kina-vm ls
expect_exit 0 kina-vm boot --help
expect_exit 0 kina-vm network ls
assert_eq "$(audit_events)" "$before" "events after ls, --help, network ls"
expect_exit 0 kina-audit verify
ok "read-only commands record nothing; the log verifies"
