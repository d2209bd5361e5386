#!/usr/bin/env python3
"""craft.py OUT SENTINEL: writes one OCI layout per malicious-layer case under
OUT/<case>/ and prints "<case> <expect> [<path that must exist in the root>]"
per line. expect is "refuse" (exit 65) or "contain" (exit 0 with nothing
outside the root touched; "either" accepts both). Cases follow containerd's
TestBreakouts, umoci's scoping tests and the CVEs named in the issue."""
import gzip, hashlib, io, json, os, sys, tarfile

out, sentinel = sys.argv[1], sys.argv[2]
S = sentinel.lstrip("/")

def entry(name, kind="file", data=b"", target="", mode=None, pax=None):
    ti = tarfile.TarInfo(name)
    ti.mode = mode if mode is not None else (0o755 if kind == "dir" else 0o644)
    if kind == "file": ti.type, ti.size = tarfile.REGTYPE, len(data)
    elif kind == "dir": ti.type = tarfile.DIRTYPE
    elif kind == "sym": ti.type, ti.linkname = tarfile.SYMTYPE, target
    elif kind == "hard": ti.type, ti.linkname = tarfile.LNKTYPE, target
    elif kind == "fifo": ti.type = tarfile.FIFOTYPE
    if pax: ti.pax_headers = pax
    return ti, data

def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for ti, data in entries:
            t.addfile(ti, io.BytesIO(data) if ti.type == tarfile.REGTYPE else None)
    return buf.getvalue()

def layout(name, layers):
    d = os.path.join(out, name)
    os.makedirs(d + "/blobs/sha256")
    def put(b):
        h = hashlib.sha256(b).hexdigest()
        open(f"{d}/blobs/sha256/{h}", "wb").write(b)
        return {"digest": "sha256:" + h, "size": len(b)}
    descs, diffs = [], []
    for raw in layers:
        diffs.append("sha256:" + hashlib.sha256(raw).hexdigest())
        descs.append(dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **put(gzip.compress(raw, 1))))
    cfg = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diffs}}).encode())
    man = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **cfg),
                          "layers": descs}).encode())
    json.dump({"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json", **man)]},
              open(d + "/index.json", "w"))
    open(d + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')

cases = []
def case(name, expect, layers, must_exist=""):
    layout(name, [layer(l) for l in layers])
    cases.append(f"{name} {expect} {must_exist}".strip())

F = lambda n, d=b"x": entry(n, "file", d)
case("dotdot-path", "refuse", [[F("../escape")]])
case("dotdot-deep", "refuse", [[F("a/b/../../../escape")]])
case("dotdot-sentinel", "refuse", [[F("../../../../../../../../" + S + "/pwned")]])
case("absolute-path", "contain", [[F("/" + S + "/pwned")]], S + "/pwned")
case("symlink-absolute-host", "contain", [[entry("evil", "sym", target=sentinel), F("evil/pwned")]], S + "/pwned")
case("symlink-root", "contain", [[entry("root", "sym", target="/"), F("root/" + S + "/pwned")]], S + "/pwned")
case("symlink-relative-up", "contain", [[entry("up", "sym", target="../../../../../../../.."), F("up/" + S + "/pwned")]], S + "/pwned")
case("symlink-up-two-layers", "contain", [[entry("up", "sym", target="../../../../../../../..")], [F("up/" + S + "/pwned")]], S + "/pwned")
case("symlink-chain", "contain", [[entry("a", "sym", target="b"), entry("b", "sym", target="../c"), entry("c", "sym", target=sentinel), F("a/pwned")]], S + "/pwned")
case("symlink-replaces-dir", "contain", [[entry("d", "dir"), F("d/x")], [entry("d", "sym", target=sentinel), F("d/pwned")]], S + "/pwned")
case("symlink-then-overwrite", "contain", [[entry("l", "sym", target=sentinel + "/file")], [F("l", b"overwritten")]], "l")
case("symlink-dangling-dir", "contain", [[entry("dd", "sym", target="/nonexistent/dir"), F("dd/x")]], "nonexistent/dir/x")
case("hardlink-dotdot", "refuse", [[entry("h", "hard", target="../../../../" + S + "/file")]])
case("hardlink-absolute", "refuse", [[entry("h", "hard", target=sentinel + "/file")]])
case("hardlink-through-symlink", "refuse", [[entry("s", "sym", target=sentinel), entry("h", "hard", target="s/file")]])
case("hardlink-to-symlink", "contain", [[entry("s", "sym", target=sentinel + "/file"), entry("h", "hard", target="s"), F("h2", b"y")]], "h")
case("hardlink-to-symlink-overwrite", "contain", [[entry("s", "sym", target=sentinel + "/file"), entry("h", "hard", target="s")], [F("h", b"overwritten")]], "h")
case("hardlink-dir", "refuse", [[entry("d", "dir"), entry("h", "hard", target="d")]])
case("whiteout-dotdot", "refuse", [[F(".wh..")]])
case("whiteout-dotdotdot", "refuse", [[F("a/.wh...")]])
case("whiteout-aufs-meta", "refuse", [[F(".wh..wh.plnk")]])
case("whiteout-through-symlink", "contain", [[entry("d", "sym", target=sentinel)], [F("d/.wh.file")]])
case("whiteout-sentinel-abs", "contain", [[F(S + "/.wh.file")]])
case("opaque-through-symlink", "contain", [[entry("d", "sym", target=sentinel)], [F("d/.wh..wh..opq")]])
case("whiteout-as-dir", "refuse", [[F(".wh.x/y")]])
case("root-to-symlink", "refuse", [[entry(".", "sym", target=sentinel)]])
case("root-to-symlink-slash", "refuse", [[entry("./", "sym", target="/")]])
case("root-to-file", "refuse", [[F(".")]])
case("root-to-fifo", "refuse", [[entry(".", "fifo")]])
case("xattr-bad-namespace", "refuse", [[entry("f", "file", b"x", pax={"SCHILY.xattr.system.posix_acl_access": "x"})]])
case("dir-replaces-symlink", "contain", [[entry("d", "sym", target=sentinel)], [entry("d", "dir"), F("d/pwned")]], "d/pwned")
print("\n".join(cases))
