#!/usr/bin/env python3
"""deep.py OUT N DEPTH [dotdot]: an OCI layout whose one layer has N files,
each under its own chain of DEPTH nested directories (bN/a/a/.../a/f, paths
near PATH_MAX). With "dotdot": then a symlink at the bottom of b0's chain
whose target climbs back up with DEPTH+1 "..", and a file created through it
(b0/a/.../a/up/made/f lands in /made/f). A few KiB compressed; the
unpacker's cost must stay linear."""
import gzip, hashlib, io, json, os, sys, tarfile

out, n, depth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
    for i in range(n):
        ti = tarfile.TarInfo(f"b{i}/" + "/".join(["a"] * depth) + "/f")
        t.addfile(ti, io.BytesIO(b""))
    if len(sys.argv) > 4 and sys.argv[4] == "dotdot":
        bottom = "b0/" + "/".join(["a"] * depth)
        ti = tarfile.TarInfo(bottom + "/up")
        ti.type, ti.linkname = tarfile.SYMTYPE, "/".join([".."] * (depth + 1))
        t.addfile(ti)
        t.addfile(tarfile.TarInfo(bottom + "/up/made/f"), io.BytesIO(b""))
raw = buf.getvalue()
os.makedirs(out + "/blobs/sha256")
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(f"{out}/blobs/sha256/{h}", "wb").write(b)
    return {"digest": "sha256:" + h, "size": len(b)}
layer = put(gzip.compress(raw, 9))
cfg = put(json.dumps({"architecture": "amd64", "os": "linux",
                      "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode())
man = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **cfg),
                      "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **layer)]}).encode())
json.dump({"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json", **man)]},
          open(out + "/index.json", "w"))
open(out + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
