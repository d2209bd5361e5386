#!/bin/bash
# kina-image import (OCI layout dir and tar, docker save tar), list, inspect,
# unpack (compared with umoci unpack), export, rm, and their errors.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"

build_rich_image "$TEST_TMP/oci" rich

# OCI layout directory.
expect_exit 0 kina-image import "$TEST_TMP/oci" --tag example.com/rich:1
[ "$(printf '%s\n' "$OUT" | wc -l)" -eq 1 ] || fail "one Image record expected"
assert_eq "$(jq_field "$OUT" .kind)" Image
check_records Image "$OUT"
assert_eq "$(jq_field "$OUT" .reference)" example.com/rich:1
assert_eq "$(jq_field "$OUT" '.layers|length')" 2
digest=$(jq_field "$OUT" .digest)
want=$(jq -r '.manifests[]|select(.annotations."org.opencontainers.image.ref.name"=="rich")|.digest' oci/index.json)
assert_eq "$digest" "$want" "digest of the imported manifest"
ok "import OCI layout directory"

# unpack and compare with umoci's rootfs.
expect_exit 0 kina-image unpack example.com/rich:1 --rootfs "$TEST_TMP/kina-root"
assert_eq "$(jq_field "$OUT" .kind)" Rootfs
check_records Rootfs "$OUT"
assert_eq "$(jq_field "$OUT" .path)" "$TEST_TMP/kina-root"
umoci unpack --image oci:rich "$TEST_TMP/umoci-bundle" >/dev/null
treecmp "$TEST_TMP/kina-root" "$TEST_TMP/umoci-bundle/rootfs" || fail "unpacked tree differs from umoci's"
[ ! -e kina-root/gone ] || fail "whiteout not applied"
assert_eq "$(cat kina-root/etc/hello)" changed
assert_eq "$(stat -c %a kina-root/usr/bin/tool)" 4755
assert_eq "$(stat -c %h kina-root/usr/bin/tool)" 2
assert_eq "$(readlink kina-root/var/run)" /run
assert_eq "$(stat -c %u:%g kina-root/opt/app/rel)" "12:34"
KINA_NO_OPENAT2=1 expect_exit 0 kina-image unpack example.com/rich:1 --rootfs "$TEST_TMP/walk-root"
treecmp "$TEST_TMP/walk-root" "$TEST_TMP/kina-root" || fail "the O_NOFOLLOW walk unpacks differently from openat2"
ok "unpack equals umoci unpack (openat2 and walk)"

# Records on stdin: unpack forwards what it does not consume.
other='{"apiVersion":"kina/v1alpha1","kind":"Other","x":1}'
expect_exit 0 sh -c "{ echo '$other'; kina-image inspect example.com/rich:1; } | kina-image unpack --rootfs '$TEST_TMP/from-stdin'"
assert_eq "$(printf '%s\n' "$OUT" | jq -r .kind | tr '\n' ' ')" "Other Image Rootfs "
treecmp "$TEST_TMP/from-stdin" "$TEST_TMP/kina-root" || fail "stdin unpack differs"
ok "unpack from Image records"

# Errors: existing output, unknown image, bad digest, bad reference.
expect_exit 73 kina-image unpack example.com/rich:1 --rootfs "$TEST_TMP/kina-root"
assert_contains "$ERR" "kina-image: error: unpacking into $TEST_TMP/kina-root: it already exists"
expect_exit 66 kina-image unpack example.com/nope:1 --rootfs "$TEST_TMP/x"
assert_contains "$ERR" "kina-image: error: image example.com/nope:1: not in the store"
expect_exit 65 kina-image inspect sha256:../../../etc/passwd
assert_contains "$ERR" 'invalid digest "sha256:../../../etc/passwd"'
expect_exit 64 kina-image inspect 'Bad/Name'
[ ! -e "$TEST_TMP/x" ] || fail "failed unpack left output"
ok "errors"

# OCI layout tar and docker save tar.
tar -C oci -cf oci.tar .
expect_exit 0 kina-image --store "$TEST_TMP/store2" import oci.tar --tag local/rich:tar
assert_eq "$(jq_field "$OUT" .digest)" "$digest"
python3 - oci "$digest" docker-save.tar <<'PY'
import gzip, hashlib, io, json, sys, tarfile
layout, digest, out = sys.argv[1], sys.argv[2], sys.argv[3]
blob = lambda d: open(f"{layout}/blobs/sha256/{d.split(':')[1]}", "rb").read()
m = json.loads(blob(digest))
cfg = blob(m["config"]["digest"])
with tarfile.open(out, "w") as t:
    def add(name, data):
        ti = tarfile.TarInfo(name); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
    cfgname = hashlib.sha256(cfg).hexdigest() + ".json"
    add(cfgname, cfg)
    layers = []
    for i, l in enumerate(m["layers"]):
        raw = gzip.decompress(blob(l["digest"]))
        name = f"layer{i}/layer.tar"
        add(name, raw); layers.append(name)
    add("manifest.json", json.dumps([{"Config": cfgname, "RepoTags": ["rich:docker"], "Layers": layers}]).encode())
PY
expect_exit 0 kina-image --store "$TEST_TMP/store2" import docker-save.tar
assert_eq "$(jq_field "$OUT" .reference)" docker.io/library/rich:docker
assert_eq "$(jq_field "$OUT" .configDigest)" "$(jq -r .config.digest "oci/blobs/sha256/${digest#sha256:}")"
expect_exit 0 kina-image --store "$TEST_TMP/store2" unpack rich:docker --rootfs "$TEST_TMP/docker-root"
treecmp "$TEST_TMP/docker-root" "$TEST_TMP/kina-root" || fail "docker save import unpacks differently"
expect_exit 0 kina-image --store "$TEST_TMP/store2" list
assert_eq "$(printf '%s\n' "$OUT" | jq -r .reference | sort | tr '\n' ' ')" "docker.io/library/rich:docker docker.io/local/rich:tar "
ok "import OCI tar and docker save tar"

# export (oci and docker) and import the archive again.
expect_exit 0 kina-image export example.com/rich:1 --out "$TEST_TMP/exp-oci.tar"
expect_exit 0 kina-image export example.com/rich:1 --out "$TEST_TMP/exp-docker.tar" --format docker
tar -tf exp-docker.tar | grep -qx manifest.json || fail "docker export has no manifest.json"
expect_exit 0 kina-image --store "$TEST_TMP/store3" import exp-oci.tar
assert_eq "$(jq_field "$OUT" .reference)" example.com/rich:1
assert_eq "$(jq_field "$OUT" .digest)" "$digest"
expect_exit 0 kina-image --store "$TEST_TMP/store4" import exp-docker.tar
assert_eq "$(jq_field "$OUT" .digest)" "$digest"
mkdir exp && tar -C exp -xf exp-oci.tar && umoci unpack --image "exp:example.com/rich:1" exp-bundle >/dev/null
treecmp exp-bundle/rootfs kina-root || fail "umoci reads the export differently"
expect_exit 73 kina-image export example.com/rich:1 --out "$TEST_TMP/exp-oci.tar"
# Review finding: export wrote to the fixed name OUT.kina-tmp after unlinking
# whatever was there (another export's work in progress, or a symlink planted
# there in a shared directory between the unlink and the open).
echo "another export in progress" >"$TEST_TMP/exp-two.tar.kina-tmp"
expect_exit 0 kina-image export example.com/rich:1 --out "$TEST_TMP/exp-two.tar"
assert_eq "$(cat "$TEST_TMP/exp-two.tar.kina-tmp")" "another export in progress"
cmp exp-two.tar exp-oci.tar || fail "second export differs"
ls -a "$TEST_TMP" | grep -q "^\.exp-two\.tar\.kina-tmp" && fail "export left its temporary file"
rm "$TEST_TMP/exp-two.tar.kina-tmp"
ok "export"

# Corrupt layer in the store: unpack refuses (65) and leaves nothing.
store2_layer=$(kina-image --store "$TEST_TMP/store2" inspect local/rich:tar | jq -r '.layers[1].digest')
f="$TEST_TMP/store2/blobs/sha256/${store2_layer#sha256:}"
chmod u+w "$f"; python3 -c "import sys; p=sys.argv[1]; d=bytearray(open(p,'rb').read()); d[-20]^=1; open(p,'wb').write(d)" "$f"
expect_exit 65 kina-image --store "$TEST_TMP/store2" unpack local/rich:tar --rootfs "$TEST_TMP/corrupt-root"
[ ! -e "$TEST_TMP/corrupt-root" ] || fail "a corrupt unpack left its output"
ls -a "$TEST_TMP" | grep -q kina-tmp && fail "temporary directory left behind"
ok "corrupt layer refused"

# rm: by reference; blobs only this image used are deleted.
expect_exit 0 kina-image --store "$TEST_TMP/store2" rm rich:docker
expect_exit 0 kina-image --store "$TEST_TMP/store2" list
assert_eq "$(printf "%s\n" "$OUT" | jq -r .reference)" docker.io/local/rich:tar
expect_exit 66 kina-image --store "$TEST_TMP/store2" rm rich:docker
expect_exit 0 kina-image --store "$TEST_TMP/store2" rm "$digest"
assert_eq "$(ls "$TEST_TMP/store2/blobs/sha256" | wc -l)" 0
# rm waits while a pull or import holds the store's gc.lock (shared): the
# holder keeps it until told to let go; rm is seen waiting on gc.lock with
# nothing removed, and finishes once the lock is released.
S3="$TEST_TMP/store3"
blobs_before=$(ls "$S3/blobs/sha256")
index_before=$(sha256sum < "$S3/index.json")
flock -s "$S3/gc.lock" sh -c 'touch "$1.held"; while [ ! -e "$1.release" ]; do sleep 0.05; done' sh "$TEST_TMP/gc" &
holder=$!
track_pid $holder
wait_for 30 "the stand-in pull to take $S3/gc.lock" test -e "$TEST_TMP/gc.held"
kina-image --store "$S3" rm example.com/rich:1 > "$TEST_TMP/rm.out" 2> "$TEST_TMP/rm.err" &
rmpid=$!
track_pid $rmpid
gclock=$(readlink -f "$S3/gc.lock")
rm_waits() { readlink /proc/$rmpid/fd/* 2>/dev/null | grep -qxF "$gclock"; }
wait_for 30 "rm to wait on $S3/gc.lock" rm_waits
assert_eq "$(ls "$S3/blobs/sha256")" "$blobs_before" "blobs while a pull holds gc.lock (rm collected blobs while a pull was running)"
assert_eq "$(sha256sum < "$S3/index.json")" "$index_before" "index while a pull holds gc.lock"
touch "$TEST_TMP/gc.release"
wait $holder
rc=0; wait $rmpid || rc=$?
assert_eq "$rc" 0 "exit of rm after the lock was released (stderr: $(cat "$TEST_TMP/rm.err"))"
expect_exit 66 kina-image --store "$S3" inspect example.com/rich:1
ok "rm"

# --disk: ext4 image, clean for e2fsck, same tree as the directory.
expect_exit 0 kina-image unpack example.com/rich:1 --disk "$TEST_TMP/root.ext4"
assert_eq "$(jq_field "$OUT" .disk)" "$TEST_TMP/root.ext4"
e2fsck -fn "$TEST_TMP/root.ext4" >/dev/null || fail "e2fsck reports problems"
debugfs -R "stat /usr/bin/tool" "$TEST_TMP/root.ext4" 2>/dev/null | grep -q "Mode:  04755" || fail "setuid lost on disk"
debugfs -R "ea_list /usr/bin/tool" "$TEST_TMP/root.ext4" 2>/dev/null | grep -q "security.capability" || fail "capability lost on disk"
debugfs -R "stat /dev-null" "$TEST_TMP/root.ext4" 2>/dev/null | grep -q "Type: character special" || fail "device lost on disk"
ls -a "$TEST_TMP" | grep -q 'kina-rootfs' && fail "temporary rootfs left"
# The disk holds the tree the directory unpack makes (read with debugfs).
treecmp "ext4:$TEST_TMP/root.ext4" "$TEST_TMP/kina-root" || fail "the disk differs from the directory unpack"
assert_eq "$(jq_field "$OUT" .files)" "$(find "$TEST_TMP/kina-root" -mindepth 1 | wc -l)"
expect_exit 73 kina-image unpack example.com/rich:1 --disk "$TEST_TMP/root.ext4"
expect_exit 73 kina-image unpack example.com/rich:1 --disk "$TEST_TMP/small.ext4" --disk-size 32K
assert_contains "$ERR" "creating disk $TEST_TMP/small.ext4: mke2fs"
assert_contains "$ERR" "larger --disk-size"
[ ! -e "$TEST_TMP/small.ext4" ] || fail "failed disk left behind"
# Big enough for mke2fs, too small for the image: the disk fills up.
expect_exit 73 kina-image unpack example.com/rich:1 --disk "$TEST_TMP/small.ext4" --disk-size 300K
assert_contains "$ERR" "creating disk $TEST_TMP/small.ext4: layer sha256:"
assert_contains "$ERR" "the disk is full (Could not allocate block"
[ ! -e "$TEST_TMP/small.ext4" ] || fail "failed disk left behind"
ls -a "$TEST_TMP" | grep -q 'kina-tmp\|kina-rootfs' && fail "temporary files left: $(ls -a "$TEST_TMP")"
ok "disk"

# --disk from three layers with every kind of entry and change (whiteouts, an
# opaque directory, replacements, hardlinks, ACLs ...): clean, and the same
# tree as the directory unpack, the root directory and the record included.
python3 "$HERE/multilayer.py" "$TEST_TMP/multi"
expect_exit 0 kina-image import "$TEST_TMP/multi" --tag example.com/multi:1
expect_exit 0 kina-image unpack example.com/multi:1 --rootfs "$TEST_TMP/multi-root"
dir_rec=$OUT
expect_exit 0 kina-image unpack example.com/multi:1 --disk "$TEST_TMP/multi.ext4"
check_records Rootfs "$OUT"
assert_eq "$(jq_field "$OUT" .size)" "$(jq_field "$dir_rec" .size)"
assert_eq "$(jq_field "$OUT" .files)" "$(jq_field "$dir_rec" .files)"
e2fsck -fn "$TEST_TMP/multi.ext4" >"$TEST_TMP/fsck.out" 2>&1 || fail "e2fsck reports problems: $(cat "$TEST_TMP/fsck.out")"
treecmp "ext4:$TEST_TMP/multi.ext4" "$TEST_TMP/multi-root" || fail "the multi-layer disk differs from the directory unpack"
[ ! -e "$TEST_TMP/multi-root/b" ] && [ ! -e "$TEST_TMP/multi-root/a/f1" ] && [ -e "$TEST_TMP/multi-root/a/new" ] ||
  fail "the directory unpack did not apply the whiteouts (test is void)"
root_stat=$(debugfs -R "stat /" "$TEST_TMP/multi.ext4" 2>/dev/null)
assert_contains "$root_stat" "Mode:  0751"
assert_contains "$root_stat" "mtime: 0x$(printf %08x 1700000020):"
assert_contains "$(debugfs -R "ls /" "$TEST_TMP/multi.ext4" 2>/dev/null)" "lost+found"
ok "disk from three layers equals the directory unpack"

# zstd layers do not tell their size: the default size is a guess from the
# compressed size; the same tree again. When the guess is too small (80 MB of
# zeros in a few KB of zstd), the disk is made from a directory instead.
python3 "$HERE/multilayer.py" "$TEST_TMP/multi-zstd" --zstd
expect_exit 0 kina-image import "$TEST_TMP/multi-zstd" --tag example.com/multi:zstd
expect_exit 0 kina-image unpack example.com/multi:zstd --disk "$TEST_TMP/multi-zstd.ext4"
e2fsck -fn "$TEST_TMP/multi-zstd.ext4" >/dev/null 2>&1 || fail "e2fsck reports problems (zstd)"
treecmp "ext4:$TEST_TMP/multi-zstd.ext4" "$TEST_TMP/multi-root" || fail "the disk from zstd layers differs"
python3 "$HERE/multilayer.py" "$TEST_TMP/zeros" --zstd --zeros 80000000
expect_exit 0 kina-image import "$TEST_TMP/zeros" --tag example.com/zeros:1
expect_exit 0 kina-image unpack example.com/zeros:1 --disk "$TEST_TMP/zeros.ext4"
assert_contains "$ERR" "is too small: unpacking a directory first"
e2fsck -fn "$TEST_TMP/zeros.ext4" >/dev/null 2>&1 || fail "e2fsck reports problems (fallback)"
assert_contains "$(debugfs -R "stat /zeros" "$TEST_TMP/zeros.ext4" 2>/dev/null)" "Size: 80000000"
assert_eq "$(jq_field "$OUT" .size)" 80000000
ls -a "$TEST_TMP" | grep -q 'kina-tmp\|kina-rootfs' && fail "temporary files left: $(ls -a "$TEST_TMP")"
rm -f "$TEST_TMP/zeros.ext4"
ok "disk from zstd layers, and from a directory when the guessed size is too small"

# SIGTERM while the disk is written: no disk, no temporary. The layer blob is
# a FIFO held open without data, so the unpack waits in the middle.
python3 "$HERE/multilayer.py" "$TEST_TMP/held" --zeros 1234
expect_exit 0 kina-image import "$TEST_TMP/held" --tag example.com/held:1
blob="$KINA_HOME/images/blobs/sha256/$(kina-image inspect example.com/held:1 | jq -r '.layers[0].digest' | cut -d: -f2)"
[ -f "$blob" ] || fail "layer blob not at $blob"
rm "$blob" && mkfifo "$blob"
interrupted() {  # SIGNAL: unpack --disk, stopped by SIGNAL while it waits for the layer
  kina-image unpack example.com/held:1 --disk "$TEST_TMP/held.ext4" --disk-size 16M >/dev/null 2>"$TEST_TMP/held.err" &
  local pid=$!
  track_pid $pid
  exec 3>"$blob"  # returns once the unpack opened the layer
  for _ in $(seq 200); do ls -a "$TEST_TMP" | grep -q '^\.held\.ext4\.kina-tmp\.' && break; sleep 0.05; done
  ls -a "$TEST_TMP" | grep -q '^\.held\.ext4\.kina-tmp\.' || fail "the unpack never made its temporary: $(cat "$TEST_TMP/held.err")"
  # Waits until mke2fs is done and the unpack is blocked reading the layer
  # (a thread's wchan names pipe_read; where the kernel hides wchan, "0",
  # only the first part is checked).
  waits_for_data() {
    ! pgrep -P "$pid" >/dev/null || return 1
    local w="" f
    for f in /proc/"$pid"/task/*/wchan; do w+="$(cat "$f" 2>/dev/null)"$'\n'; done
    [[ $w == *pipe_read* ]] || [[ -z ${w//[0$'\n']/} ]]
  }
  wait_for 30 "the unpack to wait for the layer's data" waits_for_data
  kill -"$1" $pid
  local rc=0; wait $pid || rc=$?
  exec 3>&-
  echo $rc
}
assert_eq "$(interrupted TERM)" 143 "exit after SIGTERM"
[ ! -e "$TEST_TMP/held.ext4" ] || fail "SIGTERM left a disk"
ls -a "$TEST_TMP" | grep -q 'held.ext4.kina-tmp' && fail "SIGTERM left the temporary: $(ls -a "$TEST_TMP")"
interrupted KILL >/dev/null
ls -a "$TEST_TMP" | grep -q 'held.ext4.kina-tmp' || fail "kill -9 left nothing to sweep (test is void)"
rm "$blob"
expect_exit 0 kina-image import "$TEST_TMP/held" --tag example.com/held:1
expect_exit 0 kina-image unpack example.com/held:1 --disk "$TEST_TMP/held.ext4"
ls -a "$TEST_TMP" | grep -q 'held.ext4.kina-tmp' && fail "what kill -9 left was not swept"
ok "SIGTERM and kill -9 while writing a disk: no disk; the next run sweeps"

# Every mutating command appended an audit event.
n=$(grep -c '"tool":"kina-image"' "$KINA_HOME/audit/log.jsonl")
[ "$n" -ge 8 ] || fail "expected audit events, found $n"
grep -q '"action":"unpack","target":"example.com/nope:1".*"outcome":"error","exitCode":66' "$KINA_HOME/audit/log.jsonl" || fail "failed unpack not audited"
ok "audit"
