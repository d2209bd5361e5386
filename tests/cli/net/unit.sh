#!/bin/bash
# kinanet-unit: kina-net's Go unit tests (go test ./...), go vet, gofmt, and
# the lead's build command produces a static binary.
. "$KINA_NET_TESTLIB"
. "$KINA_CLI_LIB"
have_go || { echo "skip: go not installed"; exit 77; }

cd "$KINANET_SRC"
go vet ./... || fail "go vet"
unformatted=$(gofmt -l .)
[ -z "$unformatted" ] || fail "gofmt: not formatted: $unformatted"
go test -count=1 ./... || fail "go test"
ok "go test ./..."

# go.mod/go.sum are complete and tidy (-diff changes nothing, prints the diff).
go mod tidy -diff || fail "go.mod/go.sum are not tidy (run go mod tidy)"

# Only the dependencies the brief allows are direct requirements.
direct=$(go list -m -f '{{if not .Indirect}}{{if not .Main}}{{.Path}}{{end}}{{end}}' all | sort | tr '\n' ' ')
assert_eq "$direct" "github.com/google/nftables github.com/vishvananda/netlink k8s.io/api k8s.io/apimachinery k8s.io/client-go " "direct dependencies"

build_kinanet "$TEST_TMP/kina-net"
go version -m "$TEST_TMP/kina-net" | grep -q 'CGO_ENABLED=0' || fail "kina-net not built with CGO_ENABLED=0"
expect_exit 0 "$TEST_TMP/kina-net" --version
assert_eq "$OUT" "kina-net $(sed -n 's/^const Version = "\(.*\)"$/\1/p' config.go)" "--version"
expect_exit 0 "$TEST_TMP/kina-net" --help
assert_contains "$OUT" "enforces NetworkPolicy" "--help"
assert_contains "$OUT" "--objects-file FILE" "--help (test inputs)"
ok "static build, --help says NetworkPolicy is enforced"

# Go's fuzzing on the two parsers of outside input, bounded in time (the
# seeds already ran as part of go test above).
secs=${KINA_FUZZ_SECONDS:-5}
# A failing input is saved under testdata/fuzz/NAME. Go's fuzzing engine can
# also end with "context deadline exceeded" and no input when a worker is
# mid-run as -fuzztime runs out on a loaded machine: that is retried once,
# and fails the second time.
fuzz_once() { go test -run '^$' -fuzz "^$1\$" -fuzztime "${secs}s" . >"$TEST_TMP/fuzz.log" 2>&1; }
for f in FuzzParsePodSubnets FuzzParseNodeList FuzzParseObjects; do
  fuzz_once "$f" && continue
  cat "$TEST_TMP/fuzz.log" >&2
  [ -z "$(ls -A "testdata/fuzz/$f" 2>/dev/null)" ] || fail "$f found a failing input (saved under testdata/fuzz/$f)"
  grep -q 'context deadline exceeded' "$TEST_TMP/fuzz.log" || fail "$f failed"
  echo "$f: the fuzzing engine timed out without an input; once more" >&2
  fuzz_once "$f" || { cat "$TEST_TMP/fuzz.log" >&2; fail "$f failed twice"; }
done
ok "fuzzed ParsePodSubnets, ParseNodeList and ParseObjects for ${secs}s each"
