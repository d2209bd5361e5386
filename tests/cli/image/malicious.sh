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
KINA_NO_OPENAT2=1 run_cases walk

# --disk writes ext4 straight from the layers (disk.hpp): every case ends as
# the directory unpack did (refused, or the same tree), and the disk is clean.
mkdir -p "$TEST_TMP/disks"
while read -r name expect must; do
  root="$TEST_TMP/roots-openat2/$name" disk="$TEST_TMP/disks/$name.ext4" rc=0
  kina-image unpack "local/$name:openat2" --disk "$disk" >/dev/null 2>"$TEST_TMP/err" || rc=$?
  want=65; [ -d "$root" ] && want=0
  [ "$rc" = "$want" ] || fail "disk/$name: expected exit $want as the directory unpack, got $rc: $(cat "$TEST_TMP/err")"
  if [ "$rc" = 0 ]; then
    e2fsck -fn "$disk" >"$TEST_TMP/fsck" 2>&1 || fail "disk/$name: e2fsck reports problems: $(cat "$TEST_TMP/fsck")"
    treecmp --ignore-dir-mtime "ext4:$disk" "$root" >"$TEST_TMP/cmp" 2>&1 || fail "disk/$name: the disk differs from the directory: $(cat "$TEST_TMP/cmp")"
  else
    grep -q "^kina-image: error: layer sha256:" "$TEST_TMP/err" || fail "disk/$name: unclear error: $(cat "$TEST_TMP/err")"
    [ ! -e "$disk" ] || fail "disk/$name: refused unpack left $disk"
  fi
  [ "$(tree_hash "$sentinel")" = "$before" ] || fail "disk/$name: the sentinel tree outside the root changed"
done <cases.txt
ls -a "$TEST_TMP/disks" | grep -q kina-tmp && fail "disk: temporary files left behind"
ok "$(wc -l <cases.txt) malicious cases (--disk, compared with the directory unpack)"

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
expect_exit 65 kina-image unpack local/caps:1 --disk "$TEST_TMP/capped.ext4" --max-entries 3
assert_contains "$ERR" "more than 3 entries in total (limit; see --max-entries)"
expect_exit 65 kina-image unpack local/caps:1 --disk "$TEST_TMP/capped.ext4" --max-bytes 1000
assert_contains "$ERR" "more than 1000 uncompressed bytes in total (limit; see --max-bytes)"
[ ! -e "$TEST_TMP/capped.ext4" ] || fail "capped unpack left a disk"
ls -a "$TEST_TMP" | grep -q 'kina-tmp' && fail "capped unpack left temporaries"
ok "caps"

# Review finding: deep paths made unpack quadratic. Every entry recorded every
# prefix of its path as a string (a 4 KiB path of 2000 components: 4 MiB of
# memory per entry), and creating missing parents re-resolved each prefix with
# openat2 (2 million component lookups per entry). A 3 KiB layer of 20 such
# entries took about 100 MiB; now the cost is linear (the design's 64 MiB).
python3 "$HERE/deep.py" "$TEST_TMP/deep" 20 2000
expect_exit 0 kina-image import "$TEST_TMP/deep" --tag local/deep:1
# (meson sets MALLOC_PERTURB_, which touches freed memory and inflates the RSS)
expect_exit 0 env -u MALLOC_PERTURB_ /usr/bin/time -o "$TEST_TMP/deep.rss" -f %M kina-image unpack local/deep:1 --rootfs "$TEST_TMP/deep-root"
rss=$(tail -1 "$TEST_TMP/deep.rss")
[ "$rss" -lt 65536 ] || fail "unpacking 20 deep paths took ${rss} KiB (limit 64 MiB)"
[ -e "$TEST_TMP/deep-root/b19/$(printf 'a/%.0s' $(seq 2000))f" ] || fail "deep file missing"
# The ext4 writer keeps the tree in memory: linear too (40,000 directories here).
expect_exit 0 env -u MALLOC_PERTURB_ /usr/bin/time -o "$TEST_TMP/deep-disk.rss" -f %M kina-image unpack local/deep:1 --disk "$TEST_TMP/deep.ext4"
rss=$(tail -1 "$TEST_TMP/deep-disk.rss")
[ "$rss" -lt 65536 ] || fail "writing 20 deep paths to a disk took ${rss} KiB (limit 64 MiB)"
e2fsck -fn "$TEST_TMP/deep.ext4" >/dev/null 2>&1 || fail "e2fsck reports problems on the deep disk"
assert_contains "$(debugfs -R "stat /b19/$(printf 'a/%.0s' $(seq 2000))f" "$TEST_TMP/deep.ext4" 2>/dev/null)" "Type: regular"
rm -f "$TEST_TMP/deep.ext4"
if command -v strace >/dev/null && strace -f -o /dev/null true 2>/dev/null; then
  python3 "$HERE/deep.py" "$TEST_TMP/deep2" 2 2000
  expect_exit 0 kina-image import "$TEST_TMP/deep2" --tag local/deep:2
  strace -f -c -e trace=openat2 -o "$TEST_TMP/deep.strace" kina-image unpack local/deep:2 --rootfs "$TEST_TMP/deep-root2" >/dev/null
  calls=$(awk '$NF == "openat2" {print $4}' "$TEST_TMP/deep.strace")
  [ "${calls:-0}" -lt 100 ] || fail "openat2 called $calls times for 2 entries"
  # Review finding: the O_NOFOLLOW walk (also what creates missing parents)
  # walked again from the root for every ".." of a symlink target: 1000 ".."
  # below 1000 directories cost half a million openat calls; now one each.
  python3 "$HERE/deep.py" "$TEST_TMP/deep3" 1 1000 dotdot
  expect_exit 0 kina-image import "$TEST_TMP/deep3" --tag local/deep:3
  for mode in openat2 walk; do
    nowalk=; [ $mode = walk ] && nowalk=1
    KINA_NO_OPENAT2=$nowalk strace -f -c -e trace=openat -o "$TEST_TMP/dd.strace" \
      kina-image unpack local/deep:3 --rootfs "$TEST_TMP/dd-$mode" >/dev/null
    calls=$(awk '$NF == "openat" {print $4}' "$TEST_TMP/dd.strace")
    [ "${calls:-0}" -lt 50000 ] || fail "$mode: openat called $calls times to resolve 1000 \"..\""
    [ -e "$TEST_TMP/dd-$mode/made/f" ] || fail "$mode: the file made through the symlink is not at /made/f"
  done
fi
ok "deep paths cost linear memory and lookups"
