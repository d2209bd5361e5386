#!/usr/bin/env bash
# Output paths (docs/security.md, "Output paths"): kina-audit never turns a
# device, FIFO, symlink or read-only file into its own file (checkpoint --out,
# --log), never blocks on one, keeps the mode of a file it replaces, and never
# follows or leaves a lock file outside $KINA_HOME.
source "$KINA_CLI_LIB"
LOG="$KINA_HOME/audit/log.jsonl"
export KINA_PASSPHRASE_FILE="$TEST_TMP/pass"
printf 'a passphrase for the test\n' > "$KINA_PASSPHRASE_FILE"
chmod 600 "$KINA_PASSPHRASE_FILE"
kina-audit keygen --name kina-test/audit >/dev/null
kina-audit append --tool t --action one >/dev/null
D="$TEST_TMP/out"; mkdir -p "$D"
T="timeout -k 2 20"   # a regression fails instead of hanging

# checkpoint --out: /dev/null, a FIFO, a symlink to a device, a symlink to
# /proc/self/fd/1 (a pipe here), a symlink to a regular file, a read-only file.
null_before=$(stat -c '%F %a' /dev/null)
rc=0; $T kina-audit checkpoint --out /dev/null >/dev/null 2>"$D/err" || rc=$?; ERR=$(cat "$D/err")
devnull_intact "checkpoint --out /dev/null"
assert_eq "$rc" 73 "checkpoint --out /dev/null"
assert_contains "$ERR" "/dev/null" "error names the path"
assert_contains "$ERR" "character device"
assert_eq "$(stat -c '%F %a' /dev/null)" "$null_before" "/dev/null untouched"
mkfifo "$D/fifo"
expect_exit 73 $T kina-audit checkpoint --out "$D/fifo"
assert_contains "$ERR" "FIFO"
[ -p "$D/fifo" ] || fail "the FIFO was replaced"
ln -s /dev/null "$D/to-null"
expect_exit 73 $T kina-audit checkpoint --out "$D/to-null"
[ -L "$D/to-null" ] || fail "the symlink was replaced"
ln -s /proc/self/fd/1 "$D/to-stdout"
rc=0; $T kina-audit checkpoint --out "$D/to-stdout" 2>"$D/err" | cat >/dev/null || rc=${PIPESTATUS[0]}
assert_eq "$rc" 73 "checkpoint --out a symlink to /proc/self/fd/1"
echo keep > "$D/target"; ln -s "$D/target" "$D/to-file"
expect_exit 73 $T kina-audit checkpoint --out "$D/to-file"
assert_contains "$ERR" "symbolic link"
assert_eq "$(cat "$D/target")" keep "a symlink's target is not written"
echo old > "$D/ro"; chmod 0444 "$D/ro"
expect_exit 73 $T kina-audit checkpoint --out "$D/ro"
assert_contains "$ERR" "read-only"
assert_eq "$(cat "$D/ro")" old
assert_eq "$(ls "$KINA_HOME/audit/checkpoints" 2>/dev/null | wc -l)" 0 "nothing signed or stored after a refused --out"
# An existing regular file is replaced and keeps its mode; a new one gets 0644.
echo old > "$D/cp.note"; chmod 0640 "$D/cp.note"
expect_exit 0 kina-audit checkpoint --out "$D/cp.note"
assert_eq "$(stat -c %a "$D/cp.note")" 640 "mode kept"
assert_contains "$(cat "$D/cp.note")" "kina-test/audit"
expect_exit 0 kina-audit checkpoint --out "$D/new.note"
assert_eq "$(stat -c %a "$D/new.note")" 644

# --log: a device, a FIFO or a symlink is refused before a lock file is made.
rc=0; $T kina-audit --log /dev/null append --tool t --action a >/dev/null 2>"$D/err" || rc=$?; ERR=$(cat "$D/err")
devnull_intact "--log /dev/null append"
assert_eq "$rc" 73 "--log /dev/null append"
assert_contains "$ERR" "/dev/null"
assert_eq "$(stat -c '%F %a' /dev/null)" "$null_before" "/dev/null untouched"
expect_exit 73 $T kina-audit --log "$D/fifo" append --tool t --action a
[ ! -e "$D/fifo.lock" ] || fail "a lock file was left beside the FIFO"
ln -s "$LOG" "$D/log-link"
expect_exit 73 $T kina-audit --log "$D/log-link" append --tool t --action a
# Readers refuse a FIFO or device instead of blocking on it (nothing writes the FIFO).
expect_exit 65 $T kina-audit --log "$D/fifo" verify
assert_contains "$ERR" "FIFO"
expect_exit 65 $T kina-audit --log "$D/fifo" show
expect_exit 65 $T kina-audit --log /dev/zero show
expect_exit 65 $T kina-audit --log "$D/fifo" prove 0 --checkpoint "$D/cp.note"

# A log outside $KINA_HOME gets its lock file under $KINA_HOME/locks, not beside it.
expect_exit 0 kina-audit --log "$D/other.jsonl" append --tool t --action a
[ ! -e "$D/other.jsonl.lock" ] || fail "lock file left beside a log outside KINA_HOME"
[ "$(ls "$KINA_HOME/locks" | wc -l)" -ge 1 ] || fail "no lock under KINA_HOME/locks"

# A symlink planted at the lock path is refused and its target not emptied.
echo precious > "$D/precious"
ln -s "$D/precious" "$LOG.lock.tmp" && mv -f "$LOG.lock.tmp" "$LOG.lock"
expect_exit 73 $T kina-audit append --tool t --action a
assert_contains "$ERR" "symbolic link"
assert_eq "$(cat "$D/precious")" precious "the lock symlink's target is intact"
rm "$LOG.lock"
# Nor a hard link to another file.
ln "$D/precious" "$LOG.lock"
expect_exit 73 $T kina-audit append --tool t --action a
assert_eq "$(cat "$D/precious")" precious "the hard-linked file is intact"
rm "$LOG.lock"
expect_exit 0 kina-audit verify
ok "outputs"
