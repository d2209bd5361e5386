#!/usr/bin/env bash
# kina-kube key material: parallel first uses agree on one master key; a sealed
# key copied over another, a key that does not match its certificate, and a
# corrupted header are refused (65) naming the file; an unknown KINA_KEYSTORE
# is refused (78) on opening too.
source "$KINA_CLI_LIB"
S=https://127.0.0.1:6443

# 8 first uses at once, in fresh homes: each process says it is ready, then
# blocks reading one line from a FIFO; the 8 lines are written in one go once
# all are ready (the FIFO is held open read-write meanwhile, so a reader that
# opens it late still finds its line).
for round in 1 2 3; do
  export KINA_HOME="$TEST_TMP/home$round"
  mkdir -m 0700 "$KINA_HOME"
  fifo="$TEST_TMP/go$round"
  mkfifo "$fifo"
  exec 3<>"$fifo"
  pids=()
  for i in 1 2 3 4 5 6 7 8; do
    ( exec 3>&-; : > "$TEST_TMP/ready$round.$i"; read -r _ < "$fifo"; exec kina-kube pki init --cluster "c$i" >/dev/null 2>&1 ) &
    pids+=($!)
  done
  for i in 1 2 3 4 5 6 7 8; do
    until [ -e "$TEST_TMP/ready$round.$i" ]; do sleep 0.01; done
  done
  printf 'go\ngo\ngo\ngo\ngo\ngo\ngo\ngo\n' >&3
  for p in "${pids[@]}"; do wait "$p" || fail "round $round: a parallel pki init failed"; done
  exec 3>&-
  for i in 1 2 3 4 5 6 7 8; do
    expect_exit 0 kina-kube pki export --cluster "c$i" --dir "$TEST_TMP/export$round-$i"
  done
  [ "$(find "$KINA_HOME/keys" -name '.*tmp*' | wc -l)" = 0 ] || fail "a temporary key file was left behind"
done
ok "8 parallel first uses share one master key"

export KINA_HOME="$TEST_TMP/home1"
P="$KINA_HOME/clusters/c1/pki"
expect_exit 0 kina-kube sign --cluster c1 --user u --server "$S" --out "$TEST_TMP/ok.yaml"

# A sealed key copied over another.
cp "$P/ca.key.sealed" "$TEST_TMP/ca.key.sealed.orig"
cp "$P/front-proxy-ca.key.sealed" "$P/ca.key.sealed"
expect_exit 65 kina-kube sign --cluster c1 --user u --server "$S" --out "$TEST_TMP/a.yaml"
assert_contains "$ERR" "kina-kube: error: opening $P/ca.key.sealed: it holds the sealed \"cluster c1 pki/front-proxy-ca.key\", not the \"cluster c1 pki/ca.key\""
expect_exit 65 kina-kube pki issue --cluster c1 --cn x --out "$TEST_TMP/certs"
expect_exit 65 kina-kube pki export --cluster c1 --dir "$TEST_TMP/exp-swapped"
# The same key file of another cluster.
cp "$KINA_HOME/clusters/c2/pki/ca.key.sealed" "$P/ca.key.sealed"
expect_exit 65 kina-kube sign --cluster c1 --user u --server "$S" --out "$TEST_TMP/a.yaml"
assert_contains "$ERR" "$P/ca.key.sealed"
cp "$TEST_TMP/ca.key.sealed.orig" "$P/ca.key.sealed"
expect_exit 0 kina-kube sign --cluster c1 --user u --server "$S" --out "$TEST_TMP/a.yaml"
ok "a swapped sealed key is refused by name"

# A certificate that is not the key's (an older ca.crt put back).
cp "$P/ca.crt" "$TEST_TMP/ca.crt.old"
expect_exit 0 kina-kube pki init --cluster c1 --force
cp "$TEST_TMP/ca.crt.old" "$P/ca.crt"
expect_exit 65 kina-kube sign --cluster c1 --user u --server "$S" --out "$TEST_TMP/b.yaml"
assert_eq "$ERR" "kina-kube: error: opening $P/ca.key.sealed: the key does not match its certificate $P/ca.crt
hint: restore the pair from a backup, or make a new PKI with: kina-kube pki init --force"
[ ! -e "$TEST_TMP/b.yaml" ] || fail "signed with a key that is not the certificate's"
# The service-account pair is checked the same way.
cp "$P/sa.pub" "$TEST_TMP/sa.pub"
expect_exit 0 kina-kube pki init --cluster c1 --force
cp "$TEST_TMP/sa.pub" "$P/sa.pub"
expect_exit 65 kina-kube pki export --cluster c1 --dir "$TEST_TMP/exp-sa"
assert_contains "$ERR" "the key does not match its public key $P/sa.pub"
expect_exit 0 kina-kube pki init --cluster c1 --force
ok "keys are checked against their certificates"

# A flipped byte in the header (the salt) is corruption, not a wrong key.
# (Every bit of it is flipped: writing a fixed value would leave the file as
# it was when the random salt already held that value, 1 run in 256.)
b=$(od -An -tu1 -j20 -N1 "$P/ca.key.sealed" | tr -d ' ')
printf "\\$(printf '%03o' $(( b ^ 255 )))" | dd of="$P/ca.key.sealed" bs=1 seek=20 conv=notrunc 2>/dev/null
[ "$(od -An -tu1 -j20 -N1 "$P/ca.key.sealed" | tr -d ' ')" = "$(( b ^ 255 ))" ] || fail "the byte was not flipped"
expect_exit 65 kina-kube sign --cluster c1 --user u --server "$S" --out "$TEST_TMP/c.yaml"
assert_contains "$ERR" "opening $P/ca.key.sealed: the file is corrupted"
ok "header corruption reads as corruption"

# An unknown KINA_KEYSTORE is refused when opening, naming it.
expect_exit 78 env KINA_KEYSTORE=floppy kina-kube sign --cluster c2 --user u --server "$S" --out "$TEST_TMP/d.yaml"
assert_contains "$ERR" 'KINA_KEYSTORE="floppy": unknown keystore'
[ ! -e "$TEST_TMP/d.yaml" ] || fail "signed despite an unknown KINA_KEYSTORE"
ok "unknown KINA_KEYSTORE"
