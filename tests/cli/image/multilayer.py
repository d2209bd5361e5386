#!/usr/bin/env python3
"""multilayer.py OUT [--zstd] [--zeros N]: an OCI layout (tag "multi") of three gzip layers that use
every kind of entry a layer can hold, then change them: whiteouts of files and
of a whole directory, an opaque directory, a directory replaced by a file and
a file by a directory, a broken hardlink group, hardlinks, fast and slow
symlinks, a path through a symlink, devices (small and large numbers), a FIFO,
setuid and sticky modes, large ids, nanosecond and pre-1970 and post-2038
mtimes, xattrs (a file capability too), POSIX ACLs in xattr form and in GNU
tar's named form, a file larger than kina's 4 MiB write buffer. Every layer
names the directories it changes, as layer generators do, so the directory
times are the same whatever writes the layers. --zstd: zstd layers (no size in them);
--zeros N: instead, one layer holding one file of N zero bytes."""
import gzip, hashlib, io, json, os, random, struct, subprocess, sys, tarfile

out = sys.argv[1]
use_zstd = "--zstd" in sys.argv
zeros = int(sys.argv[sys.argv.index("--zeros") + 1]) if "--zeros" in sys.argv else None
T = 1700000000

def acl(*entries):  # (tag, perm, id): the kernel's xattr form
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)

U = 0xffffffff
ACL_ACCESS = acl((1, 7, U), (4, 5, U), (8, 5, 4), (0x10, 5, U), (0x20, 0, U))
ACL_DEFAULT = acl((1, 7, U), (2, 5, 1000), (4, 5, U), (8, 5, 4), (0x10, 5, U), (0x20, 5, U))
CAP = bytes.fromhex("0100000200200000000000000000000000000000")

def e(name, kind="file", data=b"", target="", mode=None, uid=0, gid=0, mtime=T, pax=None, dev=(0, 0)):
    ti = tarfile.TarInfo(name)
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    ti.uid, ti.gid = uid, gid
    ti.mtime = mtime
    types = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "sym": tarfile.SYMTYPE, "hard": tarfile.LNKTYPE,
             "fifo": tarfile.FIFOTYPE, "chr": tarfile.CHRTYPE, "blk": tarfile.BLKTYPE}
    ti.type = types[kind]
    if kind == "file": ti.size = len(data)
    if kind in ("sym", "hard"): ti.linkname = target
    if kind in ("chr", "blk"): ti.devmajor, ti.devminor = dev
    ti.pax_headers = dict(pax or {})
    if isinstance(mtime, float) or isinstance(mtime, str):
        ti.pax_headers["mtime"] = str(mtime)
        ti.mtime = int(float(mtime))
    return ti, data

def x(**kv):  # SCHILY.xattr pax records; bytes that are not UTF-8 make tarfile write hdrcharset=BINARY
    return {"SCHILY.xattr." + k.replace("__", "."): v.decode("utf-8", "surrogateescape") for k, v in kv.items()}

rnd = random.Random(7)
big = bytes(rnd.getrandbits(8) for _ in range(9 * 1024 * 1024 + 123))
layer1 = [
    e("./", "dir", mtime=T - 5),
    e("etc/", "dir"), e("etc/passwd", data=b"root:x:0:0::/root:/bin/sh\nsvc:x:1000:1000::/:/bin/false\n"),
    e("etc/group", data=b"root:x:0:\nadm:x:4:\n"),
    e("etc/hello", data=b"hello\n", mtime="1700000000.123456789", pax=x(user__note=b"kina")),
    e("a/", "dir", mtime=T - 1), e("a/f1", data=b"one\n"), e("a/sub/", "dir"), e("a/sub/f2", data=b"two\n"),
    e("a/link", "sym", target="f1"),
    e("b/", "dir"), e("b/x", data=b"x\n"), e("b/y", data=b"y\n"), e("b/keep", data=b"k\n"),
    e("d/", "dir"), e("d/file", data=b"in d\n"), e("f", data=b"a file, later a directory\n"),
    e("usr/", "dir"), e("usr/bin/", "dir"),
    e("usr/bin/tool", data=b"#!/bin/sh\n", mode=0o4755, pax=x(security__capability=CAP)),
    e("usr/bin/tool2", "hard", target="usr/bin/tool"), e("usr/bin/tool3", "hard", target="usr/bin/tool"),
    e("usr/big", data=big, mode=0o2711), e("usr/empty", data=b""),
    e("var/", "dir"), e("var/run", "sym", target="/run"), e("run/", "dir", mode=0o755),
    e("var/slow", "sym", target="/" + "long/" * 30 + "target"),
    e("var/log/", "dir"), e("var/log/journal/", "dir", mode=0o2755, gid=4,
                             pax=x(system__posix_acl_access=ACL_ACCESS, system__posix_acl_default=ACL_DEFAULT)),
    e("dev/", "dir"), e("dev/null", "chr", mode=0o666, dev=(1, 3)), e("dev/loop0", "blk", mode=0o660, gid=6, dev=(7, 0)),
    e("dev/big", "chr", dev=(300, 70000)), e("dev/fifo", "fifo"),
    e("tmp/", "dir", mode=0o1777),
    e("home/", "dir"), e("home/svc/", "dir", uid=1000, gid=1000, mode=0o700),
    e("home/svc/own", data=b"mine\n", uid=1000, gid=1000), e("home/huge-ids", data=b"ids\n", uid=100000, gid=200000),
    e("old", data=b"before 1970\n", mtime=-86400 * 365), e("future", data=b"after 2038\n", mtime=4102444800),
    e("epoch", data=b"at 0\n", mtime=0),
]
layer2 = [
    e("a/", "dir", mtime=T + 10), e("a/.wh..wh..opq"), e("a/new", data=b"new\n"), e("a/new-link", "hard", target="a/new"),
    e("b/", "dir", mtime=T + 11), e("b/.wh.x"),
    e("d", data=b"d is a file now\n"), e("f/", "dir", mtime=T + 12), e("f/inner", data=b"inner\n"),
    e("usr/", "dir"), e("usr/bin/", "dir", mtime=T + 13), e("usr/bin/tool2", data=b"replaced\n", mode=0o755),
    e("var/", "dir"), e("run/", "dir", mtime=T + 14), e("var/run/through", data=b"written through var/run\n"),
    e("etc/", "dir", mtime=T + 15),
    e("etc/shared", data=b"shared\n", pax={"SCHILY.acl.access": "user::rw-,group::r--,group:adm:r--,mask::r--,other::---"}),
]
layer3 = [
    e("./", "dir", mode=0o751, mtime=T + 20),
    e(".wh.b"), e("a/", "dir", mtime=T + 21), e("a/sub/", "dir", mtime=T + 22), e("a/sub/again", data=b"again\n"),
    e("dev/", "dir", mtime=T + 23), e("dev/.wh.fifo"),
]

def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()

os.makedirs(out + "/blobs/sha256")
def put(b, media):
    h = hashlib.sha256(b).hexdigest()
    open(f"{out}/blobs/sha256/{h}", "wb").write(b)
    return {"mediaType": media, "digest": "sha256:" + h, "size": len(b)}
if zeros is not None:
    layer1, layer2, layer3 = [e("zeros", data=bytes(zeros))], None, None
raws = [layer(l) for l in (layer1, layer2, layer3) if l is not None]
def compress(r):
    if use_zstd:  # streamed, as registries' clients write it: no content size in the frame
        z = subprocess.run(["zstd", "-q", "-c", "--no-content-size"], input=r, capture_output=True, check=True).stdout
        return put(z, "application/vnd.oci.image.layer.v1.tar+zstd")
    return put(gzip.compress(r, 1), "application/vnd.oci.image.layer.v1.tar+gzip")
descs = [compress(r) for r in raws]
cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                  "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(r).hexdigest() for r in raws]}}).encode()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": put(cfg, "application/vnd.oci.image.config.v1+json"), "layers": descs}).encode()
md = put(man, "application/vnd.oci.image.manifest.v1+json")
md["annotations"] = {"org.opencontainers.image.ref.name": "multi"}
open(out + "/index.json", "w").write(json.dumps({"schemaVersion": 2, "manifests": [md]}))
open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
