#!/usr/bin/env bash
# kina-image: numeric flags have checked ranges (docs/cli.md, "Numeric bounds"):
# before, --max-entries -5 was read as 2^64-5 (no cap at all).
source "$KINA_CLI_LIB"
for n in -5 0 0x10 1e3 18446744073709551615; do
  expect_exit 64 kina-image unpack --max-entries="$n" alpine
  assert_contains "$ERR" "--max-entries"
done
assert_contains "$ERR" '"18446744073709551615" is not an integer from 1 to'
for j in 0 17 -1; do
  expect_exit 64 kina-image pull --jobs="$j" alpine
  assert_contains "$ERR" "--jobs"
done
ok "kina-image numeric bounds"
