#!/bin/bash
# kina-image pull against Debian's docker-registry on 127.0.0.1: OCI, Docker
# v2s2, a multi-platform index, zstd layers; digests equal skopeo's; errors.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"

start_registry

build_rich_image "$TEST_TMP/oci" rich
# An arm64 variant of the same image and an index of both.
umoci config --image oci:rich --tag rich-arm --architecture arm64 >/dev/null
python3 - oci <<'PY'
import hashlib, json, sys
d = sys.argv[1]
idx = json.load(open(f"{d}/index.json"))
by = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
ms = []
for tag, arch in (("rich", "amd64"), ("rich-arm", "arm64")):
    m = dict(by[tag]); m.pop("annotations", None); m["platform"] = {"os": "linux", "architecture": arch}; ms.append(m)
ms.insert(0, {"mediaType": "application/vnd.in-toto+json", "digest": ms[0]["digest"], "size": ms[0]["size"],
              "platform": {"os": "unknown", "architecture": "unknown"}})
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": ms}).encode()
h = hashlib.sha256(body).hexdigest()
open(f"{d}/blobs/sha256/{h}", "wb").write(body)
idx["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + h, "size": len(body),
                         "annotations": {"org.opencontainers.image.ref.name": "multi"}})
json.dump(idx, open(f"{d}/index.json", "w"))
PY
sk() { skopeo --insecure-policy "$@"; }
# zstd first: skopeo reuses blobs it has already pushed in another compression.
sk copy -q --dest-tls-verify=false --dest-compress-format zstd --dest-compress oci:oci:rich "docker://$reg/test/rich:zstd"
sk copy -q --dest-tls-verify=false oci:oci:rich "docker://$reg/test/rich:oci"
sk copy -q --dest-tls-verify=false --format v2s2 oci:oci:rich "docker://$reg/test/rich:v2s2"
sk copy -q --dest-tls-verify=false --all oci:oci:multi "docker://$reg/test/rich:multi"
skopeo_digest() { sk inspect --tls-verify=false --raw "docker://$reg/test/rich:$1" | sha256sum | cut -d' ' -f1; }

kina-image import oci >/dev/null
rich=$(jq -r '.manifests[]|select(.annotations."org.opencontainers.image.ref.name"=="rich")|.digest' oci/index.json)
kina-image unpack "$rich" --rootfs "$TEST_TMP/ref-root" >/dev/null

for t in oci v2s2 zstd; do
  expect_exit 0 kina-image --store "$TEST_TMP/s-$t" pull "$reg/test/rich:$t" --insecure-registry "$reg"
  assert_eq "$(jq_field "$OUT" .digest)" "sha256:$(skopeo_digest $t)" "$t digest"
  assert_eq "$(jq_field "$OUT" .reference)" "$reg/test/rich:$t"
  expect_exit 0 kina-image --store "$TEST_TMP/s-$t" unpack "$reg/test/rich:$t" --rootfs "$TEST_TMP/root-$t"
  treecmp "$TEST_TMP/root-$t" "$TEST_TMP/ref-root" || fail "$t: pulled image unpacks differently"
done
expect_exit 0 kina-image --store "$TEST_TMP/s-v2s2" inspect "$reg/test/rich:v2s2"
assert_eq "$(jq_field "$OUT" .mediaType)" application/vnd.docker.distribution.manifest.v2+json
assert_eq "$(jq_field "$OUT" '.layers[0].mediaType')" application/vnd.docker.image.rootfs.diff.tar.gzip
expect_exit 0 kina-image --store "$TEST_TMP/s-zstd" inspect "$reg/test/rich:zstd"
assert_eq "$(jq_field "$OUT" '.layers[0].mediaType')" application/vnd.oci.image.layer.v1.tar+zstd
ok "pull OCI, v2s2, zstd; digests equal skopeo's; trees equal"

# Multi-platform index: the digest is the index's; --platform picks the manifest.
expect_exit 0 kina-image --store "$TEST_TMP/s-multi" pull "$reg/test/rich:multi" --insecure-registry "$reg" --platform linux/arm64
assert_eq "$(jq_field "$OUT" .digest)" "sha256:$(skopeo_digest multi)"
assert_eq "$(jq_field "$OUT" .platform)" linux/arm64
arm=$(sk inspect --tls-verify=false --raw "docker://$reg/test/rich:multi" | jq -r '.manifests[]|select(.platform.architecture=="arm64")|.digest')
assert_eq "$(jq_field "$OUT" .manifestDigest)" "$arm"
expect_exit 66 kina-image --store "$TEST_TMP/s-multi" pull "$reg/test/rich:multi" --insecure-registry "$reg" --platform linux/s390x
assert_contains "$ERR" "no manifest for platform linux/s390x (available: linux/amd64, linux/arm64)"
ok "multi-platform index"

# Pull by digest, in a pipeline into unpack; blobs already stored are not fetched again.
before=$(stat -c %Y "$TEST_TMP"/s-oci/blobs/sha256/* | sort | md5sum)
d=$(skopeo_digest oci)
expect_exit 0 sh -c "kina-image --store '$TEST_TMP/s-oci' pull '$reg/test/rich@sha256:$d' --insecure-registry '$reg' | kina-image --store '$TEST_TMP/s-oci' unpack --rootfs '$TEST_TMP/piped'"
assert_eq "$(printf '%s\n' "$OUT" | jq -r .kind | tr '\n' ' ')" "Image Rootfs "
treecmp "$TEST_TMP/piped" "$TEST_TMP/ref-root" || fail "piped unpack differs"
assert_eq "$(stat -c %Y "$TEST_TMP"/s-oci/blobs/sha256/* | sort | md5sum)" "$before" "blobs rewritten"
ok "pull by digest | unpack; existing blobs skipped"

# Two pulls of the same image into one store at once: both succeed, one copy of each blob.
kina-image --store "$TEST_TMP/s-conc" pull "$reg/test/rich:oci" --insecure-registry "$reg" >conc1.out 2>conc1.err &
p1=$!
kina-image --store "$TEST_TMP/s-conc" pull "$reg/test/rich:v2s2" --insecure-registry "$reg" >conc2.out 2>conc2.err &
p2=$!
wait $p1 || fail "concurrent pull 1: $(cat conc1.err)"
wait $p2 || fail "concurrent pull 2: $(cat conc2.err)"
expect_exit 0 kina-image --store "$TEST_TMP/s-conc" list
assert_eq "$(printf '%s\n' "$OUT" | wc -l)" 2
[ -z "$(ls "$TEST_TMP/s-conc/ingest" | grep -v '\.lock$')" ] || fail "partials left: $(ls "$TEST_TMP/s-conc/ingest")"
ok "concurrent pulls"

# Errors.
expect_exit 66 kina-image --store "$TEST_TMP/s-err" pull "$reg/test/rich:nope" --insecure-registry "$reg"
assert_contains "$ERR" "pulling $reg/test/rich:nope: manifest unknown on $reg"
dead=$(free_port)
expect_exit 69 kina-image --store "$TEST_TMP/s-err" pull "127.0.0.1:$dead/test/rich:oci" --insecure-registry "127.0.0.1:$dead"
assert_contains "$ERR" "registry 127.0.0.1:$dead unreachable"
expect_exit 69 kina-image --store "$TEST_TMP/s-err" pull "$reg/test/rich:oci"
assert_contains "$ERR" "registry $reg unreachable"
expect_exit 64 kina-image pull "$reg/Test/rich"
ok "unknown tag 66, unreachable 69, TLS required without --insecure-registry"

# A config whose DiffID does not match the decompressed layer: pull refuses (65).
python3 - oci <<'PY'
import hashlib, json, sys
d = sys.argv[1]
idx = json.load(open(f"{d}/index.json"))
m = next(x for x in idx["manifests"] if x.get("annotations", {}).get("org.opencontainers.image.ref.name") == "rich")
blob = lambda dg: open(f"{d}/blobs/sha256/{dg.split(':')[1]}", "rb").read()
def put(b):
    h = hashlib.sha256(b).hexdigest(); open(f"{d}/blobs/sha256/{h}", "wb").write(b); return "sha256:" + h
man = json.loads(blob(m["digest"]))
cfg = json.loads(blob(man["config"]["digest"]))
cfg["rootfs"]["diff_ids"][1] = "sha256:" + "0" * 64
cb = json.dumps(cfg).encode()
man["config"]["digest"], man["config"]["size"] = put(cb), len(cb)
mb = json.dumps(man).encode()
idx["manifests"].append({"mediaType": m["mediaType"], "digest": put(mb), "size": len(mb),
                         "annotations": {"org.opencontainers.image.ref.name": "baddiff"}})
json.dump(idx, open(f"{d}/index.json", "w"))
PY
sk copy -q --dest-tls-verify=false oci:oci:baddiff "docker://$reg/test/baddiff:1"
expect_exit 65 kina-image --store "$TEST_TMP/s-diff" pull "$reg/test/baddiff:1" --insecure-registry "$reg" --verify-diffids
assert_contains "$ERR" "but the config says DiffID sha256:0000000000000000000000000000000000000000000000000000000000000000"
if grep -qs baddiff "$TEST_TMP/s-diff/index.json"; then fail "tagged despite a DiffID mismatch"; fi
# Without --verify-diffids the pull stores it; unpack checks while applying and refuses.
expect_exit 0 kina-image --store "$TEST_TMP/s-diff" pull "$reg/test/baddiff:1" --insecure-registry "$reg"
expect_exit 65 kina-image --store "$TEST_TMP/s-diff" unpack "$reg/test/baddiff:1" --rootfs "$TEST_TMP/baddiff-root"
assert_contains "$ERR" "but the config says DiffID sha256:0000000000000000000000000000000000000000000000000000000000000000"
[ ! -e "$TEST_TMP/baddiff-root" ] || fail "unpack with a bad DiffID left its output"
ok "DiffID mismatch 65"

# A blob whose content no longer matches its digest: 65, partial deleted.
layer=$(jq_field "$(kina-image --store "$TEST_TMP/s-oci" inspect "$reg/test/rich:oci")" '.layers[1].digest')
data=$(find registry-data -path "*/blobs/sha256/*/${layer#sha256:}/data")
python3 -c "import sys; p=sys.argv[1]; d=bytearray(open(p,'rb').read()); d[-30]^=0xff; open(p,'wb').write(d)" "$data"
expect_exit 65 kina-image --store "$TEST_TMP/s-bad" pull "$reg/test/rich:oci" --insecure-registry "$reg"
assert_contains "$ERR" "blob $layer: content has digest"
[ -z "$(ls "$TEST_TMP/s-bad/ingest" | grep -v '\.lock$')" ] || fail "partial blob left: $(ls "$TEST_TMP/s-bad/ingest")"
[ ! -e "$TEST_TMP/s-bad/blobs/sha256/${layer#sha256:}" ] || fail "bad blob stored"
ok "digest mismatch 65"

n=$(grep -c '"action":"pull"' "$KINA_HOME/audit/log.jsonl")
[ "$n" -ge 9 ] || fail "pulls not audited ($n)"
ok "audit"
