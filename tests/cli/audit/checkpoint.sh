#!/usr/bin/env bash
# Signed checkpoints: C2SP format, forged signatures, truncation and rollback
# detected against a checkpoint saved elsewhere; inclusion proofs.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"
export KINA_PASSPHRASE_FILE="$TEST_TMP/pass"
printf 'a passphrase for the test\n' > "$KINA_PASSPHRASE_FILE"
chmod 600 "$KINA_PASSPHRASE_FILE"

expect_exit 0 kina-audit keygen --name kina-test/audit
assert_eq "$(jq_field "$OUT" .keystore)" "passphrase"
vkey=$(jq_field "$OUT" .vkey)
[[ "$vkey" =~ ^kina-test/audit\+[0-9a-f]{8}\+[A-Za-z0-9+/]+=*$ ]] || fail "vkey is not C2SP shaped: $vkey"
assert_eq "$(cat "$KINA_HOME/keys/audit.vkey")" "$vkey"
assert_eq "$(stat -c %a "$KINA_HOME/keys/audit.key")" "600"
# The private key is sealed: neither the seed nor "PRIVATE+KEY" is on disk in clear.
if grep -q "PRIVATE+KEY" "$KINA_HOME/keys/audit.key"; then fail "signing key stored in clear"; fi

for i in 1 2 3 4; do kina-audit append --tool t --action "a$i" >/dev/null; done
expect_exit 0 kina-audit checkpoint --out "$TEST_TMP/saved.note"
assert_eq "$(jq_field "$OUT" .size)" "5"
# C2SP tlog-checkpoint: origin, size, base64 root, blank line, em-dash signature line.
assert_eq "$(sed -n 1p "$TEST_TMP/saved.note")" "kina-test/audit"
assert_eq "$(sed -n 2p "$TEST_TMP/saved.note")" "5"
assert_eq "$(sed -n 3p "$TEST_TMP/saved.note")" "$(kina-audit verify | jq -r .rootHash)"
assert_eq "$(sed -n 4p "$TEST_TMP/saved.note")" ""
assert_contains "$(sed -n 5p "$TEST_TMP/saved.note")" "— kina-test/audit "
mv "$KINA_HOME/audit/checkpoints" "$TEST_TMP/stored"   # keep only the external copy
cp "$LOG" "$TEST_TMP/orig"

expect_exit 0 kina-audit verify --checkpoint "$TEST_TMP/saved.note" --vkey "$vkey"
assert_eq "$(jq_field "$OUT" '.checkpoints[0].status')" "ok"
# The vkey can also be a file.
expect_exit 0 kina-audit verify --checkpoint "$TEST_TMP/saved.note" --vkey "$KINA_HOME/keys/audit.vkey"

# Growth after the checkpoint is fine.
kina-audit append --tool t --action later >/dev/null
expect_exit 0 kina-audit verify --checkpoint "$TEST_TMP/saved.note"

# Truncation: the last two entries cut off (a consistent, shorter chain).
head -n 3 "$TEST_TMP/orig" > "$LOG"
expect_exit 1 kina-audit verify --checkpoint "$TEST_TMP/saved.note"
assert_eq "$(jq_field "$OUT" .problem)" "truncated"
# Rollback and regrow to a larger size with different entries.
for i in 1 2 3; do kina-audit append --tool t --action rewritten >/dev/null; done
expect_exit 1 kina-audit verify --checkpoint "$TEST_TMP/saved.note"
assert_eq "$(jq_field "$OUT" .problem)" "checkpoint-mismatch"
cp "$TEST_TMP/orig" "$LOG"

# A forged signature (one base64 character of it changed) and a checkpoint from another key.
python3 - "$TEST_TMP/saved.note" "$TEST_TMP/forged.note" <<'PY'
import sys
s = open(sys.argv[1], encoding='utf-8').read(); i = len(s) - 6
c = 'A' if s[i] != 'A' else 'B'; open(sys.argv[2], 'w', encoding='utf-8').write(s[:i] + c + s[i+1:])
PY
expect_exit 1 kina-audit verify --checkpoint "$TEST_TMP/forged.note"
assert_eq "$(jq_field "$OUT" .problem)" "checkpoint-signature"
sed 's/^5$/4/' "$TEST_TMP/saved.note" > "$TEST_TMP/resized.note"
expect_exit 1 kina-audit verify --checkpoint "$TEST_TMP/resized.note"
assert_eq "$(jq_field "$OUT" .problem)" "checkpoint-signature"
other_home="$TEST_TMP/other"
mkdir -m 700 "$other_home"
KINA_HOME="$other_home" kina-audit keygen --name kina-test/audit >/dev/null
expect_exit 1 kina-audit verify --checkpoint "$TEST_TMP/saved.note" --vkey "$other_home/keys/audit.vkey"
assert_eq "$(jq_field "$OUT" .problem)" "checkpoint-signature"

# Inclusion proofs against the latest stored checkpoint, checked by verify-proof.
mv "$TEST_TMP/stored" "$KINA_HOME/audit/checkpoints"
expect_exit 0 kina-audit prove 2
proof=$OUT
assert_eq "$(jq_field "$proof" .treeSize)" "5"
printf '%s\n' "$proof" > "$TEST_TMP/proof.json"
expect_exit 0 kina-audit verify-proof --proof "$TEST_TMP/proof.json"
assert_eq "$(jq_field "$OUT" .valid)" "true"
expect_exit 0 sh -c "kina-audit prove 4 | kina-audit verify-proof"
# Tampered proofs fail: a path element, the entry, the leaf index.
printf '%s\n' "$proof" | jq -c '.path[0] |= ((if startswith("00") then "ff" else "00" end) + .[2:])' > "$TEST_TMP/bad1.json"
expect_exit 1 kina-audit verify-proof --proof "$TEST_TMP/bad1.json"
assert_eq "$(jq_field "$OUT" .valid)" "false"
printf '%s\n' "$proof" | jq -c '.entry |= sub("a2"; "zz")' > "$TEST_TMP/bad2.json"
expect_exit 1 kina-audit verify-proof --proof "$TEST_TMP/bad2.json"
assert_contains "$(jq_field "$OUT" .reason)" "does not hash to leafHash"
printf '%s\n' "$proof" | jq -c '.seq = 3 | .entry = ""' > "$TEST_TMP/bad3.json"
expect_exit 1 kina-audit verify-proof --proof "$TEST_TMP/bad3.json"
expect_exit 66 kina-audit prove 5
assert_contains "$ERR" "covers seq 0..4 only"

# A wrong passphrase cannot sign.
expect_exit 80 env KINA_PASSPHRASE=wrong KINA_PASSPHRASE_FILE= kina-audit checkpoint
assert_contains "$ERR" "wrong passphrase"
ok "checkpoint"
