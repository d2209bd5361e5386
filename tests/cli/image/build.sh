#!/bin/bash
# kina-image build: the same tree gives the same digests (twice, and from a
# copy with other times under SOURCE_DATE_EPOCH); one byte or one mode changes
# them; every entry kind survives build | unpack; the export is read by skopeo
# and umoci; bad inputs; SIGTERM and kill -9 leave no image and no tag.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"
root=$([ "$(id -u)" = 0 ] && echo yes || echo no)

# A tree with every entry kind an unpack must restore.
t="$TEST_TMP/tree"
mkdir -p "$t/etc/sub" "$t/usr/bin" "$t/var/log/journal" "$t/tmp" "$t/opt/$(printf 'd%.0s' $(seq 120))/deeper"
echo hello >"$t/etc/hello"
printf 'a\0b' >"$t/etc/binary"
: >"$t/etc/empty"
head -c 300000 /dev/urandom >"$t/usr/bin/tool"
chmod 4755 "$t/usr/bin/tool"
ln "$t/usr/bin/tool" "$t/usr/bin/tool-hardlink"
cp "$t/usr/bin/tool" "$t/usr/bin/gid"; chmod 2711 "$t/usr/bin/gid"
chmod 1777 "$t/tmp"
ln -s ../etc/hello "$t/etc/sub/rel"
ln -s /nonexistent "$t/dangling"
mkfifo "$t/fifo"
echo x >"$t/opt/$(printf 'd%.0s' $(seq 120))/deeper/long-path-file"
echo u >"$t/etc/caf$(printf '\xc3\xa9')"
chown 1000:2000 "$t/etc/hello"
chown -h 12:34 "$t/etc/sub/rel"
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "user.x", b"kina")' "$t/etc/hello"
if [ $root = yes ]; then
  mknod "$t/null" c 1 3
  mknod "$t/loop" b 7 0
fi
have_cap=no
if command -v setcap >/dev/null && setcap cap_net_raw+ep "$t/usr/bin/gid" 2>/dev/null; then have_cap=yes; fi
have_acl=no
if command -v setfacl >/dev/null && setfacl -m u:1234:rw "$t/etc/hello" 2>/dev/null &&
   setfacl -d -m g:4:rx "$t/var/log/journal" 2>/dev/null; then have_acl=yes; fi
# Whole-second mtimes (the image keeps seconds), set last so no later change moves them.
find "$t" -depth -exec touch -h -d @1700000000 {} +
echo "tree: root=$root setcap=$have_cap setfacl=$have_acl"

digest_of() { jq_field "$1" .digest; }
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/test:a --label org.example.v=1 --annotation org.example.a=2 \
  --entrypoint /sbin/init --cmd --log-level=info --env PATH=/usr/bin --env container=kina --workdir / --user 0:0 --platform linux/amd64
check_records Image "$OUT"
d1=$(digest_of "$OUT")
assert_eq "$(jq_field "$OUT" .reference)" kina.local/test:a
assert_eq "$(jq_field "$OUT" '.labels."org.example.v"')" 1
assert_eq "$(jq_field "$OUT" '.entrypoint|join(" ")')" /sbin/init
assert_eq "$(jq_field "$OUT" '.cmd|join(" ")')" --log-level=info
assert_eq "$(jq_field "$OUT" '.env|join(",")')" PATH=/usr/bin,container=kina
assert_eq "$(jq_field "$OUT" .user)" 0:0
assert_eq "$(jq_field "$OUT" .platform)" linux/amd64
expect_exit 0 kina-image inspect kina.local/test:a
assert_eq "$(digest_of "$OUT")" "$d1" "inspect"
rec=$OUT
cfg=$(jq_field "$rec" .configDigest)
assert_eq "$(jq -r .created "$KINA_HOME/images/blobs/sha256/${cfg#sha256:}")" 1970-01-01T00:00:00Z
man=$KINA_HOME/images/blobs/sha256/${d1#sha256:}
assert_eq "$(jq -r '.annotations."org.example.a"' "$man")" 2
layer=$KINA_HOME/images/blobs/sha256/$(jq_field "$rec" '.layers[0].digest' | cut -d: -f2)
# gzip header: no name, no time, OS Unix.
assert_eq "$(head -c 10 "$layer" | od -An -tx1 | tr -d ' \n')" 1f8b0800000000000003 "gzip header"
# Numeric owners only; entries depth first in bytewise order.
zcat "$layer" | tar -tv >listing 2>/dev/null
zcat "$layer" | tar -t >names 2>/dev/null
if awk '{print $2}' listing | grep -v '^[0-9]*/[0-9]*$' >/dev/null; then fail "owner names in the layer: $(cat listing)"; fi
assert_eq "$(head -1 names)" ./
assert_eq "$(sed -n 2p names)" dangling
grep -q '^h.* usr/bin/tool-hardlink link to usr/bin/tool$' listing || fail "tool-hardlink is not a hardlink entry: $(cat listing)"
ok "build: record, config, manifest, layer format"

# Same tree, another run, another store: the same digests.
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/test:a --label org.example.v=1 --annotation org.example.a=2 \
  --entrypoint /sbin/init --cmd --log-level=info --env PATH=/usr/bin --env container=kina --workdir / --user 0:0 --platform linux/amd64
assert_eq "$(digest_of "$OUT")" "$d1" "second build"
expect_exit 0 kina-image --store "$TEST_TMP/other-store" build --rootfs "$t" --tag kina.local/test:a --label org.example.v=1 \
  --annotation org.example.a=2 --entrypoint /sbin/init --cmd --log-level=info --env PATH=/usr/bin --env container=kina --workdir / \
  --user 0:0 --platform linux/amd64
assert_eq "$(digest_of "$OUT")" "$d1" "build into another store"
ok "same tree, same digest"

# A copy made later (cp -a, then every time moved to now): with
# SOURCE_DATE_EPOCH older than every mtime, both clamp to it and agree.
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/test:plain
plain=$(digest_of "$OUT")
cp -a "$t" "$TEST_TMP/copy"
find "$TEST_TMP/copy" -depth -exec touch -h {} +
expect_exit 0 kina-image build --rootfs "$TEST_TMP/copy" --tag kina.local/test:copy
[ "$(digest_of "$OUT")" != "$plain" ] || fail "new mtimes did not change the digest"
SOURCE_DATE_EPOCH=1600000000 expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/test:sde1
sde1=$(digest_of "$OUT")
assert_eq "$(jq -r .created "$KINA_HOME/images/blobs/sha256/$(jq_field "$OUT" .configDigest | cut -d: -f2)")" 2020-09-13T12:26:40Z
SOURCE_DATE_EPOCH=1600000000 expect_exit 0 kina-image build --rootfs "$TEST_TMP/copy" --tag kina.local/test:sde2
assert_eq "$(digest_of "$OUT")" "$sde1" "copy under SOURCE_DATE_EPOCH"
[ "$sde1" != "$plain" ] || fail "SOURCE_DATE_EPOCH changed nothing"
ok "cp -a copy with other times: same digest under SOURCE_DATE_EPOCH"

# One byte, one mode: another digest; undone: the first again.
printf 'hellp\n' >"$t/etc/hello"; touch -d @1700000000 "$t/etc/hello" "$t/etc"
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/test:byte
[ "$(digest_of "$OUT")" != "$plain" ] || fail "a changed byte kept the digest"
printf 'hello\n' >"$t/etc/hello"; touch -d @1700000000 "$t/etc/hello"
chmod 0600 "$t/etc/empty"
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/test:mode
[ "$(digest_of "$OUT")" != "$plain" ] || fail "a changed mode kept the digest"
chmod 0644 "$t/etc/empty"
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/test:back
assert_eq "$(digest_of "$OUT")" "$plain" "undone"
ok "one byte or one mode changes the digest"

# Round trip through unpack: every kind, owner, mode, xattr, ACL, hardlink.
expect_exit 0 kina-image unpack kina.local/test:a --rootfs "$TEST_TMP/unpacked"
treecmp "$t" "$TEST_TMP/unpacked" || fail "build | unpack differs from the tree"
[ "$(stat -c %a "$TEST_TMP/unpacked")" = "$(stat -c %a "$t")" ] || fail "root mode not kept"
if [ $have_cap = yes ]; then getcap "$TEST_TMP/unpacked/usr/bin/gid" | grep cap_net_raw >/dev/null || fail "file capability lost"; fi
if [ $have_acl = yes ]; then
  getfacl -cn "$TEST_TMP/unpacked/etc/hello" 2>/dev/null | grep '^user:1234:rw-' >/dev/null || fail "access ACL lost"
  getfacl -cn "$TEST_TMP/unpacked/var/log/journal" 2>/dev/null | grep '^default:group:4:r-x' >/dev/null || fail "default ACL lost"
fi
ok "round trip through unpack (devices: $root, capability: $have_cap, ACLs: $have_acl)"

# Export: OCI and docker archives that skopeo and umoci read, with the names ctr uses.
expect_exit 0 kina-image export kina.local/test:a --out "$TEST_TMP/a.oci.tar"
expect_exit 0 kina-image export kina.local/test:a --out "$TEST_TMP/a.docker.tar" --format docker
sk=$(skopeo inspect --raw oci-archive:"$TEST_TMP/a.oci.tar" | sha256sum | cut -d' ' -f1)
assert_eq "sha256:$sk" "$d1" "skopeo oci-archive digest"
assert_eq "$(skopeo inspect oci-archive:"$TEST_TMP/a.oci.tar" | jq -r '.Labels."org.example.v"')" 1
assert_eq "$(skopeo inspect docker-archive:"$TEST_TMP/a.docker.tar" | jq -r .Architecture)" amd64
mkdir lay && tar -xf a.oci.tar -C lay
assert_eq "$(jq -r '.manifests[0].annotations."io.containerd.image.name"' lay/index.json)" kina.local/test:a
assert_eq "$(jq -r '.manifests[0].annotations."org.opencontainers.image.ref.name"' lay/index.json)" kina.local/test:a
umoci ls --layout lay | grep -x kina.local/test:a >/dev/null || fail "umoci does not list the image: $(umoci ls --layout lay)"
umoci stat --image lay:kina.local/test:a --json | jq -e '.history|length==1' >/dev/null || fail "umoci stat"
ok "export read by skopeo and umoci; containerd and OCI names in index.json"

# Bad input: one line naming it, the distinct exit code, no tag.
expect_exit 66 kina-image build --rootfs "$TEST_TMP/missing" --tag kina.local/test:bad
assert_eq "$ERR" "kina-image: error: rootfs $TEST_TMP/missing: No such file or directory"
expect_exit 65 kina-image build --rootfs "$t/etc/hello" --tag kina.local/test:bad
assert_contains "$ERR" "rootfs $t/etc/hello: not a directory"
ln -s "$t" "$TEST_TMP/tree-link"
expect_exit 65 kina-image build --rootfs "$TEST_TMP/tree-link" --tag kina.local/test:bad
assert_contains "$ERR" "is a symlink"
expect_exit 64 kina-image build --rootfs "$t" --tag kina.local/Test:bad
assert_contains "$ERR" "invalid image reference"
expect_exit 64 kina-image build --rootfs "$t" --tag "kina.local/test@sha256:$(printf '0%.0s' $(seq 64))"
expect_exit 64 kina-image build --rootfs "$t" --tag kina.local/test:bad --label =x
assert_contains "$ERR" 'invalid --label "=x"'
expect_exit 64 kina-image build --rootfs "$t" --tag kina.local/test:bad --env NOEQUALS
SOURCE_DATE_EPOCH=yesterday expect_exit 64 kina-image build --rootfs "$t" --tag kina.local/test:bad
assert_contains "$ERR" 'invalid SOURCE_DATE_EPOCH "yesterday"'
expect_exit 64 kina-image build --rootfs "$t" --tag kina.local/test:bad --platform linux
grep -q kina.local/test:bad "$KINA_HOME/images/index.json" && fail "a failed build was tagged"
# A socket is skipped with a warning.
mkdir sock && python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' sock/s && echo f >sock/f
expect_exit 0 kina-image build --rootfs sock --tag kina.local/test:sock
assert_contains "$ERR" "sock/s: a socket, not stored in the image"
# A file whose size changes while it is read (a /proc file says 0 bytes, then has more).
if [ $root = yes ] && mkdir -p grow && : >grow/status && mount --bind /proc/version grow/status 2>/dev/null; then
  expect_exit 65 kina-image build --rootfs grow --tag kina.local/test:grow
  umount grow/status
  assert_contains "$ERR" "grow/status: it grew while it was read"
  ok "a file that grows while read: 65"
fi
# An unreadable file, as a user who cannot read it.
if [ $root = yes ] && command -v setpriv >/dev/null; then
  nb="$TEST_TMP/nobody"; mkdir -p "$nb/tree"; echo s >"$nb/tree/secret"; chmod 0600 "$nb/tree/secret"
  chmod 0755 "$TEST_TMP"; chown -R 65534:65534 "$nb"; chown 0:0 "$nb/tree/secret"
  rc=0; setpriv --reuid 65534 --regid 65534 --clear-groups env KINA_HOME="$nb/home" \
    "$KINA_BUILD/tools/kina-image/kina-image" build --rootfs "$nb/tree" --tag kina.local/test:unreadable 2>"$nb/err" || rc=$?
  chmod 0700 "$TEST_TMP"
  assert_eq "$rc" 71 "unreadable file exit"
  assert_eq "$(cat "$nb/err")" "kina-image: error: reading $nb/tree/secret: Permission denied"
  ok "unreadable file: 71"
fi
ok "bad inputs"

# SIGTERM in the middle of a large build: no blob, no tag, no temporary.
big="$TEST_TMP/big"
mkdir -p "$big"
for i in 1 2 3 4; do head -c 64M /dev/urandom >"$big/f$i"; done
s="$TEST_TMP/int-store"
kina-image --store "$s" build --rootfs "$big" --tag kina.local/test:big >int.out 2>int.err &
pid=$!
for _ in $(seq 300); do [ -n "$(find "$s/ingest" -type f -size +1k 2>/dev/null)" ] && break; sleep 0.05; done
[ -n "$(find "$s/ingest" -type f -size +1k)" ] || fail "the build never started writing: $(cat int.err)"
kill -TERM $pid
rc=0; wait $pid || rc=$?
assert_eq "$rc" 143 "exit after SIGTERM"
assert_eq "$(ls -A "$s/blobs/sha256")" "" "blobs left by the interrupted build"
assert_eq "$(ls -A "$s/ingest")" "" "temporaries left by the interrupted build"
[ ! -e "$s/index.json" ] || ! grep -q big "$s/index.json" || fail "tagged after SIGTERM"
# kill -9 leaves its temporary; the next build sweeps it.
kina-image --store "$s" build --rootfs "$big" --tag kina.local/test:big >int.out 2>int.err &
pid=$!
for _ in $(seq 300); do [ -n "$(find "$s/ingest" -type f -size +1k 2>/dev/null)" ] && break; sleep 0.05; done
kill -KILL $pid; wait $pid 2>/dev/null || true
[ -n "$(ls -A "$s/ingest")" ] || fail "kill -9 left nothing to sweep (test is void)"
[ ! -e "$s/index.json" ] || ! grep -q big "$s/index.json" || fail "tagged after kill -9"
expect_exit 0 kina-image --store "$s" build --rootfs "$t" --tag kina.local/test:after
assert_eq "$(ls -A "$s/ingest")" "" "what kill -9 left was not swept"
ok "SIGTERM and kill -9 during a build: no image, no tag; the next run sweeps"

n=$(grep -c '"action":"build"' "$KINA_HOME/audit/log.jsonl")
[ "$n" -ge 20 ] || fail "builds not audited ($n)"
grep '"action":"build"' "$KINA_HOME/audit/log.jsonl" | grep '"exitCode":66' >/dev/null || fail "a failed build is not audited with its code"
ok "audit"
