#!/usr/bin/env bash
# kina-vm: numeric flags have checked ranges (docs/cli.md, "Numeric bounds"),
# checked before anything else: out of range is a usage error (64) naming the flag.
source "$KINA_CLI_LIB"
for t in 300y 9223372036854775807ms 0s -5s; do
  expect_exit 64 kina-vm boot --name a --rootfs "$TEST_TMP/none" --timeout="$t" -- /bin/true
  assert_contains "$ERR" "kina-vm: error: invalid --timeout \"$t\""
done
expect_exit 64 kina-vm boot --name a --rootfs "$TEST_TMP/none" --timeout 2d -- /bin/true
assert_eq "$ERR" 'kina-vm: error: invalid --timeout "2d": must be at most 1d'
for c in 0 65 -1 99999999999 0x10; do
  expect_exit 64 kina-vm boot --name a --rootfs "$TEST_TMP/none" --cpus="$c" -- /bin/true
  assert_contains "$ERR" "--cpus"
done
# stop and exec check their flags before looking for the machine.
expect_exit 64 kina-vm stop nosuch --timeout 2h
assert_eq "$ERR" 'kina-vm: error: invalid --timeout "2h": must be at most 1h'
expect_exit 64 kina-vm stop nosuch --timeout=-1s
for u in 4294967296 4294967295 0:4294967296 0:-1 1:x :0; do
  expect_exit 64 kina-vm exec -u "$u" nosuch -- true
  assert_contains "$ERR" "invalid -u"
done
ok "kina-vm numeric bounds"
