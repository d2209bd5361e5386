# vm-apple: contract tests of the apple backend against a scripted `container`
# (tests/cli/vm/apple/container) answering each recorded JSON shape
# (0.5, 0.9-0.12, 1.x). Nothing here runs Apple's real CLI.
source "$KINA_CLI_LIB"
FAKE_DIR=$(cd "$(dirname "$KINA_VM_TESTLIB")/apple" && pwd)
export PATH="$FAKE_DIR:$PATH"
FAKE="$TEST_TMP/fake"   # = $KINA_HOME/../fake, where the fake container looks
mkdir -p "$FAKE"
FAKE_CONTAINER_LOG="$FAKE/log"
# fake_env FIXTURE [STOPPED] [EXEC_STATUS]
fake_env() {
  printf 'FAKE_CONTAINER_FIXTURE=%q\nFAKE_CONTAINER_STOPPED=%q\nFAKE_EXEC_STATUS=%q\n' "$1" "${2:-}" "${3:-0}" > "$FAKE/env"
}
REF="registry.local/node@sha256:aaaa"

for version in 0.5 0.10 1.0; do
  fake_env "$FAKE_DIR/list-$version.json"
  : > "$FAKE_CONTAINER_LOG"
  expect_exit 0 kina-vm boot --backend apple --name n1 --cluster c1 --image "$REF" --cpus 2 --memory 2Gi \
    --publish 127.0.0.1:6443:6443 --env A=1 --mount /tmp/x:/x:ro -- /sbin/init </dev/null
  assert_eq "$(jq_field "$OUT" .backend)" "apple" "$version backend"
  assert_eq "$(jq_field "$OUT" .state)" "running" "$version state"
  assert_eq "$(jq_field "$OUT" .ip)" "192.168.64.3" "$version ip"
  assert_eq "$(jq_field "$OUT" .container)" "kina-c1-n1" "$version container id"
  assert_eq "$(sed -n 1p "$FAKE_CONTAINER_LOG")" "system status"
  assert_eq "$(sed -n 2p "$FAKE_CONTAINER_LOG")" \
    "run -d --name kina-c1-n1 --cpus 2 --memory 2048M --label kina.cluster=c1 --label kina.machine=n1 --publish 127.0.0.1:6443:6443/tcp --volume /tmp/x:/x:ro --env A=1 --cap-add ALL --masked-path NONE --read-only-path NONE $REF /sbin/init"
  assert_eq "$(sed -n 3p "$FAKE_CONTAINER_LOG")" "list --all --format json"

  expect_exit 0 kina-vm ls --cluster c1
  assert_eq "$(jq_field "$OUT" .ip)" "192.168.64.3" "$version ls ip"
  fake_env "$FAKE_DIR/list-$version.json" "" 3
  expect_exit 3 kina-vm exec -e K=V -w /tmp -u 0 n1 -- uname -r
  assert_eq "$OUT" "exec: --env K=V --workdir /tmp --user 0 kina-c1-n1 uname -r"
  expect_exit 0 kina-vm logs n1
  assert_eq "$OUT" "console of kina-c1-n1"
  expect_exit 69 kina-vm cp /etc/hostname n1:/tmp/x
  assert_contains "$ERR" "not implemented for the apple backend"

  expect_exit 0 kina-vm stop n1 --timeout 10s
  assert_eq "$(jq_field "$OUT" .state)" "exited" "$version state after stop"
  assert_contains "$(cat "$FAKE_CONTAINER_LOG")" "stop --time 10 kina-c1-n1"
  expect_exit 0 kina-vm rm n1
  assert_contains "$(cat "$FAKE_CONTAINER_LOG")" "delete kina-c1-n1"
  [ ! -e "$KINA_HOME/clusters/c1/machines/n1" ] || fail "rm left the machine directory"
  ok "container $version: boot, ls, exec, logs, stop, rm"
done

# The image from an Image record on stdin (reference@digest); other records forwarded.
fake_env "$FAKE_DIR/list-1.0.json"
: > "$FAKE_CONTAINER_LOG"
printf '%s\n' '{"apiVersion":"kina/v1alpha1","kind":"Image","reference":"registry.local/node:v1","digest":"sha256:bbbb"}' \
  '{"apiVersion":"kina/v1alpha1","kind":"Other","x":1}' > "$TEST_TMP/records"
expect_exit 0 kina-vm boot --backend apple --name n2 --cluster c1 < "$TEST_TMP/records"
assert_eq "$(printf '%s\n' "$OUT" | sed -n 1p | jq -r .kind)" "Other" "forwarded record"
assert_eq "$(printf '%s\n' "$OUT" | sed -n 2p | jq -r .kind)" "Machine"
assert_contains "$(sed -n 2p "$FAKE_CONTAINER_LOG")" " registry.local/node:v1@sha256:bbbb"
expect_exit 0 kina-vm rm -f n2
assert_contains "$(cat "$FAKE_CONTAINER_LOG")" "delete --force kina-c1-n2"
ok "image from the Image record"

# A stopped container system: 69 naming the command that starts it; nothing left.
fake_env "$FAKE_DIR/list-1.0.json" 1
expect_exit 69 kina-vm boot --backend apple --name n3 --cluster c1 --image "$REF" </dev/null
assert_contains "$ERR" "kina-vm: error: the apple backend: the container system is not running"
assert_contains "$ERR" "hint: start it with: container system start"
[ ! -e "$KINA_HOME/clusters/c1/machines/n3" ] || fail "a refused boot left files"
ok "stopped container system"
