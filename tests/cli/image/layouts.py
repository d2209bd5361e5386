#!/usr/bin/env python3
"""layouts.py CMD ...: OCI layouts for the hardening tests.
  image DIR FILES [REFNAME]  a layout directory, one layer of FILES small files,
                             annotated with REFNAME (org.opencontainers.image.ref.name);
                             added to the layout when DIR has one
  tar OUT MEMBERS            an OCI layout tar: a one-file image plus MEMBERS extra blobs
  huge LAYOUT TAG SIZE       adds TAG to LAYOUT: the first image again, its first
                             layer declared SIZE bytes under a digest nobody has"""
import gzip, hashlib, io, json, os, sys, tarfile

def layer(n):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for i in range(n):
            ti = tarfile.TarInfo(f"d{i // 1000}/f{i}")
            data = f"{i}\n".encode()
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()

def blobs(raw):
    """(blob bytes by hex, manifest descriptor) of a one-layer image."""
    out = {}
    def put(b):
        h = hashlib.sha256(b).hexdigest()
        out[h] = b
        return {"digest": "sha256:" + h, "size": len(b)}
    lay = put(gzip.compress(raw, 1))
    cfg = put(json.dumps({"architecture": "amd64", "os": "linux",
                          "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode())
    man = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                          "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **cfg),
                          "layers": [dict(mediaType="application/vnd.oci.image.layer.v1.tar+gzip", **lay)]}).encode())
    return out, dict(mediaType="application/vnd.oci.image.manifest.v1+json", **man)

def index(man, refname=None):
    if refname is not None:
        man = dict(man, annotations={"org.opencontainers.image.ref.name": refname})
    return json.dumps({"schemaVersion": 2, "manifests": [man]}).encode()

cmd = sys.argv[1]
if cmd == "image":
    d, n = sys.argv[2], int(sys.argv[3])
    bl, man = blobs(layer(n))
    os.makedirs(d + "/blobs/sha256", exist_ok=True)
    for h, b in bl.items():
        open(f"{d}/blobs/sha256/{h}", "wb").write(b)
    new = json.loads(index(man, sys.argv[4] if len(sys.argv) > 4 else None))
    if os.path.exists(d + "/index.json"):
        old = json.load(open(d + "/index.json"))
        new["manifests"] = old["manifests"] + new["manifests"]
    open(d + "/index.json", "w").write(json.dumps(new))
    open(d + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
elif cmd == "tar":
    out, extra = sys.argv[2], int(sys.argv[3])
    bl, man = blobs(layer(1))
    for i in range(extra):
        b = f"extra blob {i}\n".encode()
        bl[hashlib.sha256(b).hexdigest()] = b
    with tarfile.open(out, "w") as t:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", index(man))
        for h, b in bl.items():
            add("blobs/sha256/" + h, b)
elif cmd == "huge":
    d, tag, size = sys.argv[2], sys.argv[3], int(sys.argv[4])
    idx = json.load(open(d + "/index.json"))
    first = idx["manifests"][0]
    m = json.load(open(f"{d}/blobs/sha256/{first['digest'][7:]}"))
    m["layers"][0] = dict(m["layers"][0], size=size, digest="sha256:" + hashlib.sha256(b"huge layer").hexdigest())
    body = json.dumps(m).encode()
    h = hashlib.sha256(body).hexdigest()
    open(f"{d}/blobs/sha256/{h}", "wb").write(body)
    idx["manifests"].append({"mediaType": first["mediaType"], "digest": "sha256:" + h, "size": len(body),
                             "annotations": {"org.opencontainers.image.ref.name": tag}})
    json.dump(idx, open(d + "/index.json", "w"))
    print(m["layers"][0]["digest"])
