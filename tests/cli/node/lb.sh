# node-lb: `kina-node lb` forwards connections to the backends in turn and
# skips one that refuses (a stopped control plane), byte for byte both ways,
# passing a half-close on; with --backends-file it uses only the backends the
# file names and follows the file's changes (the front end adds a control
# plane once it has joined); bad flags are 64, a bad backends file 65/66; a
# port in use is 69.
source "$KINA_CLI_LIB"

ports=($(free_ports 5)); p1=${ports[0]} p2=${ports[1]} p3=${ports[2]} plb=${ports[3]} plb2=${ports[4]}
mkdir -p "$TEST_TMP/a" "$TEST_TMP/b"
echo backend-a > "$TEST_TMP/a/who"
echo backend-b > "$TEST_TMP/b/who"
(cd "$TEST_TMP/a" && exec python3 -m http.server --bind 127.0.0.1 "$p1" >/dev/null 2>&1) &
pa=$!; track_pid $pa
(cd "$TEST_TMP/b" && exec python3 -m http.server --bind 127.0.0.1 "$p2" >/dev/null 2>&1) &
pb=$!; track_pid $pb
kina-node lb --listen "127.0.0.1:$plb" --backend "127.0.0.1:$p3" --backend "127.0.0.1:$p1" --backend "127.0.0.1:$p2" 2>"$TEST_TMP/lb.err" &
track_pid $!
up() { curl -sf --max-time 2 "http://127.0.0.1:$p1/who" >/dev/null && curl -sf --max-time 2 "http://127.0.0.1:$p2/who" >/dev/null &&
       curl -s --max-time 2 "http://127.0.0.1:$plb/who" >/dev/null; }
wait_for 30 "the backends and the balancer" up

# Both live backends serve, in turn; the dead one ($p3, nothing listens) is skipped.
seen=""
for _ in 1 2 3 4 5 6; do seen="$seen $(curl -sf --max-time 5 "http://127.0.0.1:$plb/who")"; done
assert_contains "$seen" "backend-a"
assert_contains "$seen" "backend-b"
ok "both live backends serve through the balancer: $seen"

# A large body both ways, byte for byte.
head -c 3000000 /dev/urandom > "$TEST_TMP/a/big"
cp "$TEST_TMP/a/big" "$TEST_TMP/b/big"
curl -sf --max-time 30 "http://127.0.0.1:$plb/big" -o "$TEST_TMP/got"
cmp "$TEST_TMP/got" "$TEST_TMP/a/big" || fail "3 MB through the balancer differ"
ok "3 MB through the balancer unchanged"

# --backends-file: only what the file names, and its changes from the next
# connection on; a file that became invalid keeps the previous set.
bf=$TEST_TMP/backends
replace_backends() { printf "$@" > "$bf.new" && mv -f "$bf.new" "$bf"; }
replace_backends '# joined control planes\n127.0.0.1:%s\n' "$p1"
kina-node lb --listen "127.0.0.1:$plb2" --backends-file "$bf" 2>"$TEST_TMP/lb2.err" &
track_pid $!
wait_for 30 "the second balancer" curl -s --max-time 2 "http://127.0.0.1:$plb2/who" -o /dev/null
for _ in 1 2 3 4; do assert_eq "$(curl -sf --max-time 5 "http://127.0.0.1:$plb2/who")" "backend-a"; done
ok "a backends file naming one backend: only that one serves"
replace_backends '127.0.0.1:%s\n\n127.0.0.1:%s\n' "$p1" "$p2"
seen=""
for _ in 1 2 3 4 5 6; do seen="$seen $(curl -sf --max-time 5 "http://127.0.0.1:$plb2/who")"; done
assert_contains "$seen" "backend-a"
assert_contains "$seen" "backend-b"
assert_contains "$(cat "$TEST_TMP/lb2.err")" "backends now 127.0.0.1:$p1 127.0.0.1:$p2"
ok "a backend added to the file serves from the next connection: $seen"
replace_backends '127.0.0.1:%s\n' "$p2"
for _ in 1 2 3 4; do assert_eq "$(curl -sf --max-time 5 "http://127.0.0.1:$plb2/who")" "backend-b"; done
replace_backends 'not-an-endpoint\n'
for _ in 1 2 3 4; do assert_eq "$(curl -sf --max-time 5 "http://127.0.0.1:$plb2/who")" "backend-b"; done
assert_contains "$(cat "$TEST_TMP/lb2.err")" "line 1 of $bf"
assert_contains "$(cat "$TEST_TMP/lb2.err")" "keeping the previous backends"
ok "a backend removed from the file no longer serves; an invalid file keeps the previous set"

# One backend stops: every connection goes to the other.
kill "$pa"; wait "$pa" 2>/dev/null || true
for _ in 1 2 3 4; do assert_eq "$(curl -sf --max-time 5 "http://127.0.0.1:$plb/who")" "backend-b"; done
ok "a stopped backend is skipped"

# Bad input.
expect_exit 64 kina-node lb --listen 127.0.0.1 --backend "127.0.0.1:$p2"
expect_exit 64 kina-node lb --listen "127.0.0.1:$plb"
expect_exit 64 kina-node lb --listen "127.0.0.1:$plb" --backend "example:80"
expect_exit 64 kina-node lb --listen "127.0.0.1:$plb" --backend "127.0.0.1:$p2" --backends-file "$bf"
assert_contains "$ERR" "one of them"
expect_exit 66 kina-node lb --listen "127.0.0.1:$plb" --backends-file "$TEST_TMP/missing"
assert_contains "$ERR" "$TEST_TMP/missing"
: > "$TEST_TMP/empty"
expect_exit 65 kina-node lb --listen "127.0.0.1:$plb" --backends-file "$TEST_TMP/empty"
assert_contains "$ERR" "names no backend"
mkfifo "$TEST_TMP/fifo"
expect_exit 65 kina-node lb --listen "127.0.0.1:$plb" --backends-file "$TEST_TMP/fifo"
assert_contains "$ERR" "FIFO"
expect_exit 69 kina-node lb --listen "127.0.0.1:$p2" --backend "127.0.0.1:$p1"
assert_contains "$ERR" "listening on 127.0.0.1:$p2"
ok "bad flags 64, a missing backends file 66, an empty one or a FIFO 65, a port in use 69"
