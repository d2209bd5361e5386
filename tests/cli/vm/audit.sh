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

# last_event: "action outcome exitCode cluster" of the newest entry; events: how many.
events() { { kina-audit show 2>/dev/null || true; } | wc -l; }
last_event() { kina-audit show -n 1 | jq -r '[.action, .outcome, (.exitCode|tostring), (.cluster // "-")] | join(" ")'; }
# audited WANT_EXIT WANT_EVENT CMD...: CMD exits WANT_EXIT and appends exactly one event WANT_EVENT.
audited() {
  local want=$1 event=$2; shift 2
  local before
  before=$(events)
  expect_exit "$want" "$@"
  assert_eq "$(events)" "$((before + 1))" "events appended by: $*"
  assert_eq "$(last_event)" "$event" "the event of: $*"
}

audited 64 "boot error 64 -" kina-vm boot --name n1 --cluster 'Bad!' --backend apple --image r@sha256:aa
audited 64 "rm error 64 -" kina-vm rm n1 --cluster 'UPPER'
audited 64 "exec error 64 -" kina-vm exec n1 --cluster 'a b' -- true
audited 64 "network-create error 64 -" kina-vm network create n1 --cluster '-x'
audited 64 "boot error 64 default" kina-vm boot --name n1 --no-such-flag
audited 64 "network-rm error 64 default" kina-vm network rm
audited 66 "stop error 66 default" kina-vm stop nosuch
ok "input errors are recorded, an invalid --cluster too"

audited 0 "boot ok 0 c1" kina-vm boot --backend apple --name n1 --cluster c1 --image r@sha256:aa
audited 0 "exec ok 0 c1" kina-vm exec n1 -- true
exec_status 7
audited 7 "exec error 7 c1" kina-vm exec n1 -- false
exec_status 137
audited 137 "exec error 137 c1" kina-vm exec n1 -- sh -c 'kill -9 $$'
exec_status 0
audited 0 "stop ok 0 c1" kina-vm stop n1
audited 0 "start ok 0 c1" kina-vm start n1
audited 66 "start error 66 c1" kina-vm start nosuch --cluster c1
audited 64 "start error 64 default" kina-vm start n1 --no-such-flag
audited 0 "rm ok 0 c1" kina-vm rm -f n1
ok "exec records the command's status; stop and start are recorded"

# Read-only commands and --help record nothing.
before=$(events)
expect_exit 0 kina-vm ls
expect_exit 0 kina-vm boot --help
expect_exit 0 kina-vm network ls
assert_eq "$(events)" "$before" "events after ls, --help, network ls"
expect_exit 0 kina-audit verify
ok "read-only commands record nothing; the log verifies"
