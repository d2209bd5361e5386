#!/usr/bin/env bash
# kina-kube killed (SIGKILL, injected by strace at each rename in turn): pki
# init --force always leaves a PKI that opens and matches its certificates
# (before, a kill between its two renames left none), and the next run sweeps
# what the kill left; merge's temporaries holding a client key are swept by
# the next merge.
source "$KINA_CLI_LIB"
command -v strace >/dev/null || { echo "skip: no strace"; exit 77; }
strace -qq -o /dev/null true 2>/dev/null || { echo "skip: strace cannot trace here"; exit 77; }
# kill_at N CMD...: runs CMD, killed on entering its Nth rename-family call.
kill_at() {
  local n=$1; shift
  strace -qq -o /dev/null -e trace=rename,renameat,renameat2 \
    -e inject=rename,renameat,renameat2:signal=KILL:when="$n" "$@" >/dev/null 2>&1 || true
}
C="$KINA_HOME/clusters/c1"
kina-kube pki init --cluster c1 >/dev/null 2>&1

pki_ok() {
  [ -f "$C/pki/ca.crt" ] || fail "after a kill at rename $1: no PKI in $C/pki"
  rm -rf "$TEST_TMP/export"
  expect_exit 0 kina-kube pki export --cluster c1 --dir "$TEST_TMP/export"
  for ca in ca front-proxy-ca etcd/ca; do
    [ "$(openssl x509 -in "$TEST_TMP/export/$ca.crt" -noout -pubkey)" = "$(openssl pkey -in "$TEST_TMP/export/$ca.key" -pubout)" ] ||
      fail "after a kill at rename $1: $ca.key does not match $ca.crt"
  done
}
for n in $(seq 1 12); do
  kill_at "$n" kina-kube pki init --cluster c1 --force
  pki_ok "$n"
done
expect_exit 0 kina-kube pki init --cluster c1 --force
pki_ok final
left=$(find "$C" -maxdepth 1 -name '.pki.*')
[ -z "$left" ] || fail "pki init did not sweep: $left"
ok "pki init --force killed at every rename leaves a working PKI; the next run sweeps"

# What versions before RENAME_EXCHANGE left between their two renames: no
# pki, the old one in .pki.old.*/pki. The next pki init puts it back.
old=$(mktemp -d "$C/.pki.old.XXXXXX")
mv "$C/pki" "$old/pki"
fp=$(openssl x509 -in "$old/pki/ca.crt" -noout -fingerprint)
expect_exit 66 kina-kube sign --cluster c1 --user u --server https://127.0.0.1:6443 --out "$TEST_TMP/u.yaml"
expect_exit 73 kina-kube pki init --cluster c1
assert_contains "$ERR" "restored $C/pki"
assert_eq "$(openssl x509 -in "$C/pki/ca.crt" -noout -fingerprint)" "$fp"
[ ! -e "$old" ] || fail "the old-format leftover was not removed"
ok "an old-format leftover is restored"

# merge killed at its last rename leaves .config.tmp.XXXXXX (a client key);
# the next merge removes it and nothing else.
kina-kube sign --cluster c1 --user alice --server https://127.0.0.1:6443 --out "$TEST_TMP/alice.yaml" > "$TEST_TMP/alice.rec"
mkdir -p "$HOME/.kube"
for _ in 1 2; do  # the 2nd rename is the kubeconfig's (the 1st, the merge state's)
  kill_at 2 kina-kube merge < "$TEST_TMP/alice.rec"
  rm -f "$HOME/.kube/config.lock"  # left by the kill; kina-kube names it and asks the user to remove it
done
temps=$(find "$HOME/.kube" -name '.config.tmp.*')
[ -n "$temps" ] || fail "the kill left no temporary (the test did not reproduce anything)"
touch "$HOME/.kube/.config.tmp.keep-me" "$HOME/.kube/.other.tmp.ABCDEF"
ln -s /dev/null "$HOME/.kube/.config.tmp.SYMLNK"
expect_exit 0 kina-kube merge < "$TEST_TMP/alice.rec"
for t in $temps; do [ ! -e "$t" ] || fail "merge did not sweep $t"; done
[ -e "$HOME/.kube/.config.tmp.keep-me" ] && [ -e "$HOME/.kube/.other.tmp.ABCDEF" ] && [ -L "$HOME/.kube/.config.tmp.SYMLNK" ] ||
  fail "merge removed a file that is not its temporary"
kubectl --kubeconfig "$HOME/.kube/config" config get-contexts kina-c1 >/dev/null || fail "merged config is broken"
ok "merge sweeps the temporaries a kill left"

# pki export: SIGINT or SIGTERM while the files are being moved into place
# waits until DIR is complete and the staging directory (clear CA keys) is
# gone, then exits 128+N; a kill -9 leaves the staging directory, which the
# next export sweeps. The signal is sent with kill(1), to the process (a
# signal strace injects goes to the one thread that keeps it blocked, and
# would never be seen): strace holds the second rename for 3 s, and the
# signal comes once the first one is done.
n_renames=$(strace -qq -f -o "$TEST_TMP/trace" -e trace=rename,renameat,renameat2 \
  kina-kube pki export --cluster c1 --dir "$TEST_TMP/count" >/dev/null 2>&1; grep -c 'rename' "$TEST_TMP/trace")
renamed_once() { [ "$(grep -c '^rename.*= 0$' "$TEST_TMP/trace.sig" 2>/dev/null)" -ge 1 ]; }
for sig in INT TERM; do
  rm -rf "$TEST_TMP/exp" "$TEST_TMP/trace.sig"
  strace -qq -o "$TEST_TMP/trace.sig" -e trace=rename,renameat,renameat2 \
    -e inject=rename,renameat,renameat2:delay_enter=3000000:when=2 \
    kina-kube pki export --cluster c1 --dir "$TEST_TMP/exp" >/dev/null 2>&1 &
  spid=$!
  track_pid "$spid"
  wait_for 60 "the export's first rename" renamed_once
  kpid=$(pgrep -P "$spid" -x kina-kube) || fail "no kina-kube under strace"
  kill -s "$sig" "$kpid"
  rc=0; wait "$spid" || rc=$?
  assert_eq "$rc" "$((128 + $(kill -l "$sig")))" "exit status of an export ended by SIG$sig"
  [ -f "$TEST_TMP/exp/sa.key" ] || fail "SIG$sig during export left $TEST_TMP/exp incomplete"
  left=$(find "$TEST_TMP" -maxdepth 1 -name '.exp.tmp.*')
  [ -z "$left" ] || fail "SIG$sig during export left its staging directory: $left"
done
rm -rf "$TEST_TMP/exp"
kill_at "$n_renames" kina-kube pki export --cluster c1 --dir "$TEST_TMP/exp"
[ ! -e "$TEST_TMP/exp" ] || fail "a killed export left a partial directory"
left=$(find "$TEST_TMP" -maxdepth 1 -name '.exp.tmp.*')
[ -n "$left" ] || fail "the kill left no staging directory (the test did not reproduce anything)"
expect_exit 0 kina-kube pki export --cluster c1 --dir "$TEST_TMP/exp"
left=$(find "$TEST_TMP" -maxdepth 1 -name '.exp.tmp.*')
[ -z "$left" ] || fail "the next export did not sweep: $left"
ok "pki export cleans up on signals; the next run sweeps what a kill left"
