#!/bin/bash
# Malicious layers: every case is refused with 65 or contained in the root,
# with openat2 and with the O_NOFOLLOW walk; the sentinel tree outside the
# root never changes.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"

sentinel="$TEST_TMP/sentinel"
mkdir -p "$sentinel/sub"
echo secret >"$sentinel/file"
echo other >"$sentinel/sub/other"
before=$(tree_hash "$sentinel")

python3 "$HERE/craft.py" "$TEST_TMP/cases" "$sentinel" >cases.txt
[ "$(wc -l <cases.txt)" -ge 30 ] || fail "too few cases"

run_cases() {
  local mode=$1
  while read -r name expect must; do
    expect_exit 0 kina-image import "$TEST_TMP/cases/$name" --tag "local/$name:$mode"
    local root="$TEST_TMP/roots-$mode/$name" rc=0
    kina-image unpack "local/$name:$mode" --rootfs "$root" >/dev/null 2>"$TEST_TMP/err" || rc=$?
    case "$expect:$rc" in
      refuse:65 | either:65)
        grep -q "^kina-image: error: layer sha256:" "$TEST_TMP/err" || fail "$mode/$name: unclear error: $(cat "$TEST_TMP/err")"
        [ ! -e "$root" ] || fail "$mode/$name: refused unpack left $root" ;;
      contain:0 | either:0)
        if [ -n "${must:-}" ]; then [ -e "$root/$must" ] || [ -L "$root/$must" ] || fail "$mode/$name: $must not inside the root"; fi ;;
      *) fail "$mode/$name: expected $expect, got exit $rc: $(cat "$TEST_TMP/err")" ;;
    esac
    after=$(tree_hash "$sentinel")
    [ "$after" = "$before" ] || fail "$mode/$name: the sentinel tree outside the root changed"
    [ ! -e "$TEST_TMP/escape" ] && [ ! -e "$TEST_TMP/roots-$mode/escape" ] || fail "$mode/$name: wrote outside the root"
  done <cases.txt
  ls -a "$TEST_TMP/roots-$mode" | grep -q kina-tmp && fail "$mode: temporary directories left behind"
  ok "$(wc -l <cases.txt) malicious cases ($mode)"
}

run_cases openat2
KINA_IMAGE_NO_OPENAT2=1 run_cases walk

# hardlink-to-symlink links the symlink itself.
assert_eq "$(readlink "$TEST_TMP/roots-walk/hardlink-to-symlink/h")" "$sentinel/file"
assert_eq "$(cat "$sentinel/file")" secret

# Caps: a layer with more entries than allowed is refused with a clear error.
expect_exit 0 kina-image import "$TEST_TMP/cases/symlink-chain" --tag local/caps:1
expect_exit 65 kina-image unpack local/caps:1 --rootfs "$TEST_TMP/capped" --max-entries 3
assert_contains "$ERR" "more than 3 entries in total (limit; see --max-entries)"
expect_exit 65 kina-image unpack local/caps:1 --rootfs "$TEST_TMP/capped" --max-bytes 1000
assert_contains "$ERR" "more than 1000 uncompressed bytes in total (limit; see --max-bytes)"
[ ! -e "$TEST_TMP/capped" ] || fail "capped unpack left output"
ok "caps"
