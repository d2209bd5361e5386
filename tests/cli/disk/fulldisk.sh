#!/usr/bin/env bash
# A real full disk, not a simulated one: KINA_HOME and HOME live on a tmpfs
# of 16 MiB, and before each run a filler file leaves exactly K pages free,
# K = 0, 1, 2, ... until the command succeeds. Every writing command of
# kina-audit, kina-kube and kina-image, and kina-vm network create, is run
# that way. Each failed run must exit 73 or 74 with one error line naming
# "No space left on device", print no record, and leave every file as it was:
# the same names, modes, sizes and contents, so nothing half-written and no
# temporary left behind. Empty lock files and the command's own error event
# in the audit log are the only exceptions, and the log must verify intact
# after every failure. The run that succeeds must leave a complete new state,
# checked by the tool that reads it (openssl, kubectl, kina-image, diff).
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/disk/disklib.sh"
disk_setup 16m
SERVER=https://127.0.0.1:6443

# The state every case starts from, made with room to spare.
kina-audit append --tool test --action setup >/dev/null
kina-kube pki init --cluster c0 >/dev/null 2>&1
n0=$(audit_events)

# kina-audit: a batch (several pages: all or nothing), one event, the key,
# checkpoints.
python3 -c '
import json, sys
for i in range(300):
    sys.stdout.write(json.dumps({"apiVersion":"kina/v1alpha1","kind":"AuditEvent","tool":"t","action":"bulk","target":"x"*100}) + "\n")' > "$TEST_TMP/batch"
batch_in() { [ "$(audit_events)" = "$((n0 + 300))" ]; }
SNAP_LOG=1
sweep "kina-audit append (a batch of 300)" batch_in sh -c 'exec kina-audit append < "$1"' _ "$TEST_TMP/batch"
# One event: pad the log first so that it ends 10 bytes short of a page
# boundary (an event whose target makes up the difference; the entry's length
# grows with the target's by one byte per byte), so the next entry needs a
# page of its own.
LOG="$KINA_HOME/audit/log.jsonl"
pad_event() { printf '{"apiVersion":"kina/v1alpha1","kind":"AuditEvent","tool":"t","action":"pad","target":"%s"}\n' "$(head -c "$1" /dev/zero | tr '\0' x)" | kina-audit append >/dev/null; }
for _ in 1 2 3; do
  s0=$(stat -c %s "$LOG"); pad_event 1; d0=$(( $(stat -c %s "$LOG") - s0 ))
  want=$(( (PAGE - 10 - $(stat -c %s "$LOG") % PAGE + 2 * PAGE) % PAGE ))
  [ "$want" -ge "$d0" ] || want=$((want + PAGE))
  pad_event $((want - d0 + 1))
  [ $(( $(stat -c %s "$LOG") % PAGE )) != $((PAGE - 10)) ] || break
done
[ $(( $(stat -c %s "$LOG") % PAGE )) = $((PAGE - 10)) ] || fail "could not pad the log to a page boundary"
one_in() { [ "$(kina-audit show -n 1 | jq -r .action)" = one ]; }
sweep "kina-audit append (one event)" one_in kina-audit append --tool t --action one
SNAP_LOG=0
have_key() { [ -s "$KINA_HOME/keys/audit.vkey" ] && [ -n "$(jq -r .vkey < "$TEST_TMP/out")" ]; }
sweep "kina-audit keygen" have_key kina-audit keygen
checkpointed() { expect_exit 0 kina-audit verify; [ "$(jq_field "$OUT" "[.checkpoints[] | select(.status == \"ok\")] | length")" -ge 1 ]; }
sweep "kina-audit checkpoint" checkpointed kina-audit checkpoint
cp_file() { [ -s "$HOME/cp.txt" ] && expect_exit 0 kina-audit verify --checkpoint "$HOME/cp.txt" --vkey "$KINA_HOME/keys/audit.vkey"; }
sweep "kina-audit checkpoint --out" cp_file kina-audit checkpoint --out "$HOME/cp.txt"

# kina-kube: a new PKI, a replaced one, a signed kubeconfig, merge and
# unmerge of ~/.kube/config, an export of the PKI.
pki_ok() {
  rm -rf "$TEST_TMP/x"
  kina-kube pki export --cluster c1 --dir "$TEST_TMP/x" >/dev/null || return 1
  for ca in ca front-proxy-ca etcd/ca; do
    [ "$(openssl x509 -in "$TEST_TMP/x/$ca.crt" -noout -pubkey)" = "$(openssl pkey -in "$TEST_TMP/x/$ca.key" -pubout)" ] || return 1
  done
  openssl pkey -in "$TEST_TMP/x/sa.key" -pubout | cmp -s - "$TEST_TMP/x/sa.pub"
}
sweep "kina-kube pki init" pki_ok kina-kube pki init --cluster c1
fp() { openssl x509 -in "$KINA_HOME/clusters/c1/pki/ca.crt" -noout -fingerprint; }
fp1=$(fp)
replaced() { [ "$(fp)" != "$fp1" ] && pki_ok; }
sweep "kina-kube pki init --force" replaced kina-kube pki init --cluster c1 --force
signed() { kubectl --kubeconfig "$HOME/alice.yaml" config view --raw -o jsonpath='{.users[0].user.client-key-data}' | grep -q .; }
sweep "kina-kube sign --out" signed kina-kube sign --cluster c1 --user alice --server "$SERVER" --out "$HOME/alice.yaml"
# merge reads the kubeconfig a record names: keep those off the tmpfs.
kina-kube sign --cluster c0 --user bob --server "$SERVER" --out "$TEST_TMP/bob.yaml" > "$TEST_TMP/bob.rec"
kina-kube sign --cluster c1 --user carol --server "$SERVER" --out "$TEST_TMP/carol.yaml" > "$TEST_TMP/carol.rec"
kina-kube merge < "$TEST_TMP/bob.rec" >/dev/null
contexts() { kubectl --kubeconfig "$HOME/.kube/config" config get-contexts -o name | sort | tr '\n' ' '; }
merged() { [ "$(contexts)" = "kina-c0 kina-c1 " ]; }
sweep "kina-kube merge" merged sh -c 'exec kina-kube merge < "$1"' _ "$TEST_TMP/carol.rec"
unmerged() { [ "$(contexts)" = "kina-c1 " ]; }
sweep "kina-kube unmerge" unmerged kina-kube unmerge --cluster c0
exported() { [ -s "$HOME/export/ca.key" ] && [ -s "$HOME/export/sa.pub" ] && [ -s "$HOME/export/etcd/ca.crt" ]; }
sweep "kina-kube pki export" exported kina-kube pki export --cluster c1 --dir "$HOME/export"

# kina-image: a build into the store (blobs of several pages), an unpack, an
# export, a removal.
T="$TEST_TMP/tree"
mkdir -p "$T/etc" "$T/data/sub"
for f in a b c; do head -c 20000 /dev/urandom > "$T/data/$f"; done
echo hello > "$T/etc/motd"; ln -s ../etc/motd "$T/data/sub/link"; chmod 0750 "$T/data/sub"
built() { kina-image inspect kina.local/t:1 >/dev/null; }
sweep "kina-image build" built kina-image build --rootfs "$T" --tag kina.local/t:1
unpacked() { diff -r --no-dereference "$T" "$HOME/root" >/dev/null && [ "$(stat -c %a "$HOME/root/data/sub")" = 750 ]; }
sweep "kina-image unpack" unpacked kina-image unpack kina.local/t:1 --rootfs "$HOME/root"
exported_tar() { tar -tf "$HOME/t.tar" | grep -q '^index.json$'; }
sweep "kina-image export" exported_tar kina-image export kina.local/t:1 --out "$HOME/t.tar"
removed() { rc=0; kina-image inspect kina.local/t:1 >/dev/null 2>&1 || rc=$?; [ "$rc" = 66 ]; }
rm -rf "$HOME/root" "$HOME/t.tar"
# (rm may need no page at all: then it is not a full-disk case, which is fine.)
fill 0
rc=0; kina-image rm kina.local/t:1 >"$TEST_TMP/out" 2>"$TEST_TMP/err" || rc=$?
rm -f "$FS/filler"
if [ "$rc" = 0 ]; then removed || fail "kina-image rm on a full disk said ok but the image is still there"
else assert_contains "$(cat "$TEST_TMP/err")" "No space left on device"; built || fail "a failed kina-image rm lost the image"; fi
expect_exit 0 kina-audit verify
ok "kina-image rm on a full disk: exit $rc, the store consistent"

# kina-vm: a network (its network.json and leases; the switch starts only
# once they are written).
if command -v vde_switch >/dev/null; then
  net_up() { [ "$(jq -r .state < "$TEST_TMP/out")" = running ] && track_pid "$(cat "$KINA_HOME/clusters/n1/networks/net1/switch.pid")"; }
  sweep "kina-vm network create" net_up kina-vm network create net1 --cluster n1
  expect_exit 0 kina-vm network rm net1 --cluster n1
  [ ! -e "$KINA_HOME/clusters/n1/networks/net1" ] || fail "network rm left files"
else
  echo "(kina-vm network create not run: no vde_switch)"
fi
