#!/usr/bin/env bash
# Output paths (docs/security.md, "Output paths"): merge (--kubeconfig or
# $KUBECONFIG) and sign --out never turn a device, FIFO or read-only file into
# a file holding a client key, never block on one, follow a symlink only for
# the kubeconfig being merged (as kubectl does) and keep an existing file's mode.
source "$KINA_CLI_LIB"
kina-kube pki init --cluster c1 >/dev/null 2>&1
D="$TEST_TMP/out"; mkdir -p "$D"
T="timeout -k 2 30"   # a regression fails instead of hanging
kina-kube sign --cluster c1 --user alice --server https://127.0.0.1:6443 > "$D/alice.rec" 2>/dev/null
run() { # run CMD... with stdin from alice.rec; sets RC and ERR
  RC=0; $T "$@" < "$D/alice.rec" > "$D/stdout" 2> "$D/err" || RC=$?; ERR=$(cat "$D/err")
}

# /dev/null, by flag and by $KUBECONFIG (a common idiom).
run kina-kube merge --kubeconfig /dev/null
devnull_intact "merge --kubeconfig /dev/null"
assert_eq "$RC" 73 "merge --kubeconfig /dev/null"
assert_contains "$ERR" "/dev/null"
RC=0; KUBECONFIG=/dev/null $T kina-kube merge < "$D/alice.rec" > /dev/null 2> "$D/err" || RC=$?
devnull_intact "KUBECONFIG=/dev/null merge"
assert_eq "$RC" 73 "KUBECONFIG=/dev/null merge"
RC=0; KUBECONFIG=/dev/null $T kina-kube unmerge --cluster c1 > /dev/null 2> "$D/err" || RC=$?
devnull_intact "KUBECONFIG=/dev/null unmerge"
assert_eq "$RC" 73 "KUBECONFIG=/dev/null unmerge"

# A FIFO (nothing writes it: a reader would block), a symlink to a device, a
# symlink to /proc/self/fd/1 (a pipe here), a read-only file.
mkfifo "$D/fifo"
run kina-kube merge --kubeconfig "$D/fifo"
assert_eq "$RC" 73 "merge into a FIFO"
assert_contains "$ERR" "FIFO"
[ -p "$D/fifo" ] || fail "the FIFO was replaced"
[ ! -e "$D/fifo.lock" ] || fail "a lock file was left beside the FIFO"
ln -s /dev/null "$D/to-null"
run kina-kube merge --kubeconfig "$D/to-null"
devnull_intact "merge through a symlink to /dev/null"
assert_eq "$RC" 73 "merge through a symlink to /dev/null"
ln -s /proc/self/fd/1 "$D/to-stdout"
RC=0; $T kina-kube merge --kubeconfig "$D/to-stdout" < "$D/alice.rec" 2> "$D/err" | cat > /dev/null || RC=${PIPESTATUS[0]}
assert_eq "$RC" 73 "merge through a symlink to /proc/self/fd/1"
printf 'apiVersion: v1\nkind: Config\n' > "$D/ro"; chmod 0444 "$D/ro"
run kina-kube merge --kubeconfig "$D/ro"
assert_eq "$RC" 73 "merge into a read-only file"
assert_contains "$ERR" "read-only"
assert_eq "$(cat "$D/ro")" "$(printf 'apiVersion: v1\nkind: Config')" "read-only file untouched"

# A symlink to a regular file is followed as kubectl does; modes are kept.
printf 'apiVersion: v1\nkind: Config\n' > "$D/real"; chmod 0640 "$D/real"
ln -s real "$D/link"
run kina-kube merge --kubeconfig "$D/link"
assert_eq "$RC" 0 "merge through a symlink to a regular file: $ERR"
[ -L "$D/link" ] || fail "the symlink was replaced by a file"
assert_eq "$(stat -c %a "$D/real")" 640 "mode of the existing kubeconfig kept"
grep -q kina-c1 "$D/real" || fail "the target was not written"
# A dangling symlink: its target is created, 0600.
ln -s new-target "$D/dangling"
run kina-kube merge --kubeconfig "$D/dangling"
assert_eq "$RC" 0 "merge through a dangling symlink: $ERR"
assert_eq "$(stat -c %a "$D/new-target")" 600

# sign --out: /dev/null, a FIFO, a symlink to a device, a symlink to a file, read-only; 0640 kept.
sign() { RC=0; $T kina-kube sign --cluster c1 --user bob --server https://127.0.0.1:6443 --out "$1" > /dev/null 2> "$D/err" || RC=$?; ERR=$(cat "$D/err"); }
sign /dev/null
devnull_intact "sign --out /dev/null"
assert_eq "$RC" 73 "sign --out /dev/null"
sign "$D/fifo"; assert_eq "$RC" 73 "sign --out FIFO"; [ -p "$D/fifo" ] || fail "sign replaced the FIFO"
sign "$D/to-null"; devnull_intact "sign --out link to /dev/null"; assert_eq "$RC" 73 "sign --out link to /dev/null"
[ -L "$D/to-null" ] || fail "sign replaced the symlink"
sign "$D/link"; assert_eq "$RC" 73 "sign --out symlink"; assert_contains "$ERR" "symbolic link"
sign "$D/ro"; assert_eq "$RC" 73 "sign --out read-only"
echo old > "$D/bob.yaml"; chmod 0640 "$D/bob.yaml"
sign "$D/bob.yaml"; assert_eq "$RC" 0 "sign --out an existing file: $ERR"
assert_eq "$(stat -c %a "$D/bob.yaml")" 640 "sign keeps the mode"
echo old > "$D/bob-world.yaml"; chmod 0644 "$D/bob-world.yaml"
sign "$D/bob-world.yaml"; assert_eq "$RC" 0
assert_eq "$(stat -c %a "$D/bob-world.yaml")" 600 "a client key never lands in a world-readable file"
ok "outputs"
