# kina-kube merge / unmerge: other entries and fields survive, PATH.lock keeps
# concurrent writers from losing each other's entries, unmerge gives back the
# original, a broken kubeconfig or a stale lock is reported and left alone.
source "$KINA_CLI_LIB"
kina-kube pki init --cluster c1 >/dev/null 2>&1
kina-kube pki init --cluster c2 >/dev/null 2>&1
mkdir -p "$HOME/.kube"
cat > "$HOME/.kube/config" <<'YAML'
apiVersion: v1
kind: Config
clusters:
- cluster:
    server: https://prod.example.com:6443
    insecure-skip-tls-verify: true
  name: prod
contexts:
- context:
    cluster: prod
    user: ops
    namespace: web
  name: prod
current-context: prod
preferences: {}
users:
- name: ops
  user:
    token: not-a-real-token
YAML
chmod 644 "$HOME/.kube/config"
view() { kubectl --kubeconfig "${1:-$HOME/.kube/config}" config view --raw -o json | jq -S .; }
original=$(view)

# sign | merge into ~/.kube/config.
kina-kube sign --cluster c1 --user alice --group dev --server https://127.0.0.1:6443 2>/dev/null > "$TEST_TMP/alice.rec"
expect_exit 0 kina-kube merge < "$TEST_TMP/alice.rec"
assert_eq "$(jq_field "$OUT" .path)" "$HOME/.kube/config"
assert_eq "$(jq_field "$OUT" .currentContext)" kina-c1
assert_eq "$(stat -c %a "$HOME/.kube/config")" 600
[ ! -e "$HOME/.kube/config.lock" ] || fail "lock left behind"
kubectl config get-contexts -o name | sort | paste -sd' ' | grep -x >/dev/null 'kina-c1 prod' || fail "contexts: $(kubectl config get-contexts -o name)"
assert_eq "$(kubectl config current-context)" kina-c1
assert_eq "$(view | jq -c '.contexts[] | select(.name=="prod")')" "$(jq -c '.contexts[] | select(.name=="prod")' <<<"$original")"
assert_eq "$(view | jq -r '.users[] | select(.name=="ops") | .user.token')" not-a-real-token
assert_eq "$(view | jq -r '.clusters[] | select(.name=="prod") | .cluster["insecure-skip-tls-verify"]')" true
ok "merge keeps the others"

# Same names again: replaced, not duplicated. Records other than Kubeconfig go through first.
kina-kube sign --cluster c1 --user alice --server https://127.0.0.2:6443 2>/dev/null > "$TEST_TMP/alice2.rec"
printf '%s\n' '{"apiVersion":"kina/v1alpha1","kind":"Node","name":"n1"}' | cat - "$TEST_TMP/alice2.rec" > "$TEST_TMP/in"
expect_exit 0 kina-kube merge < "$TEST_TMP/in"
assert_eq "$(head -1 <<<"$OUT")" '{"apiVersion":"kina/v1alpha1","kind":"Node","name":"n1"}'
assert_eq "$(view | jq '[.clusters[] | select(.name=="kina-c1")] | length')" 1
assert_eq "$(view | jq -r '.clusters[] | select(.name=="kina-c1") | .cluster.server')" https://127.0.0.2:6443
# A second user and a second cluster.
kina-kube sign --cluster c1 --user bob --server https://127.0.0.1:6443 2>/dev/null | kina-kube merge >/dev/null
kina-kube sign --cluster c2 --user alice --server https://127.0.0.1:7443 2>/dev/null | kina-kube merge >/dev/null
assert_eq "$(view | jq -r '[.users[].name] | sort | join(" ")')" "alice@kina-c1 alice@kina-c2 bob@kina-c1 ops"
ok "replace by name"

# unmerge c1 removes exactly kina's c1 entries; unmerge c2 gives back the original.
expect_exit 0 kina-kube unmerge --cluster c1
assert_contains "$ERR" "removed 4 entries for cluster c1"
assert_eq "$(view | jq -r '[.users[].name] | sort | join(" ")')" "alice@kina-c2 ops"
assert_eq "$(view | jq -r '[.clusters[].name] | sort | join(" ")')" "kina-c2 prod"
expect_exit 0 kina-kube unmerge --cluster c2
assert_eq "$(view)" "$original" "config after unmerge"
assert_eq "$(kubectl config current-context)" prod
expect_exit 0 kina-kube unmerge --cluster c2
assert_contains "$ERR" "removed 0 entries"
ok "unmerge restores"

# $KUBECONFIG: the first file of the list is the one written.
export KUBECONFIG="$TEST_TMP/first.yaml:$HOME/.kube/config"
before=$(sha256sum < "$HOME/.kube/config")
expect_exit 0 kina-kube merge < "$TEST_TMP/alice.rec"
assert_eq "$(jq_field "$OUT" .path)" "$TEST_TMP/first.yaml"
assert_eq "$(sha256sum < "$HOME/.kube/config")" "$before" "the second file of KUBECONFIG"
assert_eq "$(stat -c %a "$TEST_TMP/first.yaml")" 600
assert_eq "$(kubectl config get-contexts -o name | sort | paste -sd' ')" "kina-c1 prod"
unset KUBECONFIG
ok "KUBECONFIG"

# Invalid YAML: exit 65, file untouched, no lock left.
printf 'clusters: [\n  - name: x\n' > "$TEST_TMP/broken"
before=$(sha256sum < "$TEST_TMP/broken")
expect_exit 65 kina-kube merge --kubeconfig "$TEST_TMP/broken" < "$TEST_TMP/alice.rec"
assert_contains "$ERR" "kina-kube: error: reading YAML $TEST_TMP/broken: line"
assert_eq "$(sha256sum < "$TEST_TMP/broken")" "$before"
[ ! -e "$TEST_TMP/broken.lock" ] || fail "lock left behind after an error"
printf 'clusters: 5\n' > "$TEST_TMP/wrongshape"
expect_exit 65 kina-kube merge --kubeconfig "$TEST_TMP/wrongshape" < "$TEST_TMP/alice.rec"
assert_eq "$ERR" "kina-kube: error: reading kubeconfig $TEST_TMP/wrongshape: line 1 column 11: clusters is not a list"
assert_eq "$(cat "$TEST_TMP/wrongshape")" "clusters: 5"
ok "invalid kubeconfig untouched"

# A stale lock (its pid is gone) is reported with its holder; a live one is waited for.
T="$TEST_TMP/locked"
cp "$HOME/.kube/config" "$T"
sh -c 'exit 0' & dead=$!; wait "$dead"
printf 'pid=%s cmd=kina-kube\n' "$dead" > "$T.lock"
before=$(sha256sum < "$T")
expect_exit 75 kina-kube merge --kubeconfig "$T" < "$TEST_TMP/alice.rec"
assert_contains "$ERR" "kina-kube: error: stale lock $T.lock: held by pid=$dead cmd=kina-kube (pid $dead is not running)"
assert_contains "$ERR" "hint: if no kubectl, kind or kina is writing $T, remove $T.lock"
assert_eq "$(sha256sum < "$T")" "$before"
: > "$T.lock"   # as kubectl leaves it: no pid inside
expect_exit 75 kina-kube merge --kubeconfig "$T" --lock-timeout 300ms < "$TEST_TMP/alice.rec"
assert_contains "$ERR" "lock $T.lock: held by another process (kubectl or kind write no pid) (waited 300 ms)"
# A live lock is waited for: the merge starts while the lock is held, is seen
# reading the holder (the lock's access time moves off the epoch), is still
# waiting with the file untouched, and completes once the lock goes.
touch -a -d @0 "$T.lock"
kina-kube merge --kubeconfig "$T" --lock-timeout 60s < "$TEST_TMP/alice.rec" > "$TEST_TMP/wait.out" 2> "$TEST_TMP/wait.err" &
m=$!
track_pid "$m"
lock_read() { [ "$(stat -c %X "$T.lock")" != 0 ]; }
wait_for 30 "the merge to find $T.lock held" lock_read
st=$(ps -o stat= -p "$m" || true)
[ -n "$st" ] && [ "${st#Z}" = "$st" ] || fail "the merge did not wait for the held lock: $(cat "$TEST_TMP/wait.err")"
assert_eq "$(sha256sum < "$T")" "$before" "the kubeconfig while its lock is held"
rm -f "$T.lock"
rc=0; wait "$m" || rc=$?
assert_eq "$rc" 0 "exit of the merge that waited (stderr: $(cat "$TEST_TMP/wait.err"))"
assert_eq "$(kubectl --kubeconfig "$T" config current-context)" kina-c1
ok "locks"

# Two merges at once, twenty times each: no entry lost.
S="$KINA_HOME/clusters/c1/kubeconfigs/alice.kubeconfig"
for i in $(seq 1 40); do sed "s/kina-c1/kina-p$i/g" "$S" > "$TEST_TMP/p$i.yaml"; done
C="$TEST_TMP/concurrent"
cp "$HOME/.kube/config" "$C"
( for i in $(seq 1 2 40); do kina-kube merge --kubeconfig "$C" --from "$TEST_TMP/p$i.yaml" >/dev/null || exit 1; done ) & a=$!
( for i in $(seq 2 2 40); do kina-kube merge --kubeconfig "$C" --from "$TEST_TMP/p$i.yaml" >/dev/null || exit 1; done ) & b=$!
wait "$a" || fail "merge loop a failed"
wait "$b" || fail "merge loop b failed"
assert_eq "$(view "$C" | jq '[.clusters[] | select(.name|startswith("kina-p"))] | length')" 40
assert_eq "$(view "$C" | jq '[.users[] | select(.name|endswith("@kina-p7"))] | length')" 1
assert_eq "$(view "$C" | jq -r '.clusters[] | select(.name=="prod") | .cluster.server')" https://prod.example.com:6443
ok "concurrent merges"

assert_eq "$(jq -r 'select(.action=="merge") | .outcome' "$KINA_HOME/audit/log.jsonl" | sort | uniq -c | xargs)" "4 error 46 ok"
ok "audit"

# unmerge of a kubeconfig that does not exist: nothing to do, nothing created.
expect_exit 0 kina-kube unmerge --cluster c1 --kubeconfig "$TEST_TMP/none.yaml"
assert_contains "$ERR" "does not exist: nothing to remove"
[ ! -e "$TEST_TMP/none.yaml" ] || fail "unmerge created a file"

# Regression: a merge killed while holding PATH.lock left the lock behind, and
# every kubectl write failed until someone removed it. The merge is stopped
# (SIGSTOP) once it holds the lock, sent SIGTERM, then continued, so the signal
# always lands while the lock is held; a large target keeps it busy long
# enough to be caught holding it.
B="$TEST_TMP/big"
python3 -c "
print('apiVersion: v1\nkind: Config\npreferences:')
for i in range(120000): print(f'  k{i}: ' + 'x' * 100)
" > "$B"
before=$(sha256sum < "$B")
cp "$B" "$TEST_TMP/big.orig"
kina-kube sign --cluster c1 --user p1 --server https://127.0.0.1:6443 --out "$TEST_TMP/p1.yaml" >/dev/null 2>&1 ||
  fail "sign --out for the killed-merge check"
caught=0
for attempt in 1 2 3 4 5; do
  kina-kube merge --kubeconfig "$B" --from "$TEST_TMP/p1.yaml" >/dev/null 2>&1 & m=$!
  track_pid "$m"
  for _ in $(seq 1 500); do [ -e "$B.lock" ] && break; sleep 0.01; done
  kill -STOP "$m" 2>/dev/null || true
  if [ -e "$B.lock" ] && kill -0 "$m" 2>/dev/null; then
    kill -TERM "$m"; kill -CONT "$m"
    caught=1
  else
    kill -CONT "$m" 2>/dev/null || true
  fi
  rc=0; wait "$m" || rc=$?
  [ "$caught" = 1 ] && break
  cp "$TEST_TMP/big.orig" "$B" 2>/dev/null || true  # a merge that finished changed it: start again
done
[ "$caught" = 1 ] || fail "five merges finished before they could be stopped holding the lock"
[ ! -e "$B.lock" ] || fail "a killed merge left $B.lock behind"
assert_eq "$rc" 143 "exit status of the killed merge"
assert_eq "$(sha256sum < "$B")" "$before" "target after a killed merge"
ok "lock removed when killed"

# Regression: an empty path was an uncaught exception (exit 70, "a bug").
expect_exit 64 kina-kube merge --kubeconfig "$TEST_TMP/e.yaml" --from ""
assert_eq "$ERR" 'kina-kube: error: invalid --from "": must not be empty'
expect_exit 64 kina-kube unmerge --cluster c1 --kubeconfig ""
assert_contains "$ERR" 'invalid --kubeconfig "": must not be empty'
ok "empty paths"
