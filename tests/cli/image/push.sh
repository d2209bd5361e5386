#!/bin/bash
# kina-image push to Debian's docker-registry on 127.0.0.1: skopeo and a pull
# into a fresh store see the same digest; a second push uploads no blob; a
# multi-platform index goes with its manifests (or is refused when they are
# missing); token auth; errors.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"

start_registry

t="$TEST_TMP/tree"
mkdir -p "$t/etc" "$t/usr/bin"
echo hello >"$t/etc/hello"
head -c 500000 /dev/urandom >"$t/usr/bin/tool"
chmod 4755 "$t/usr/bin/tool"
ln "$t/usr/bin/tool" "$t/usr/bin/tool2"
ln -s ../etc/hello "$t/usr/link"
find "$t" -depth -exec touch -h -d @1700000000 {} +
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/push:1 --label k=v
built=$(jq_field "$OUT" .digest)

# The first push uploads config and layer, then the manifest.
expect_exit 0 kina-image push kina.local/push:1 --to "$reg/test/node:v1" --insecure-registry "$reg"
check_records Image "$OUT"
assert_eq "$(jq_field "$OUT" .reference)" "$reg/test/node:v1"
assert_eq "$(jq_field "$OUT" .digest)" "$built"
assert_contains "$ERR" "2 blob(s) uploaded"
sk=$(skopeo inspect --tls-verify=false "docker://$reg/test/node:v1")
assert_eq "$(jq_field "$sk" .Digest)" "$built" "skopeo digest"
assert_eq "$(jq_field "$sk" .Labels.k)" v
assert_eq "sha256:$(skopeo inspect --raw --tls-verify=false "docker://$reg/test/node:v1" | sha256sum | cut -d' ' -f1)" "$built"
expect_exit 0 kina-image --store "$TEST_TMP/fresh" pull "$reg/test/node:v1" --insecure-registry "$reg"
assert_eq "$(jq_field "$OUT" .digest)" "$built" "pulled digest"
expect_exit 0 kina-image --store "$TEST_TMP/fresh" unpack "$reg/test/node:v1" --rootfs "$TEST_TMP/pulled-root"
treecmp "$t" "$TEST_TMP/pulled-root" || fail "pushed and pulled tree differs"
ok "push; skopeo and a fresh pull see the same digest and tree"

# A second push: the registry has every blob (HEAD 200), only the manifest is sent.
posts=$(grep -c '"POST /v2/test/node/blobs/uploads/' registry.log || true)
puts=$(grep -c '"PUT /v2/test/node/blobs/' registry.log || true)
assert_eq "$puts" 2 "blob PUTs of the first push"
expect_exit 0 kina-image push kina.local/push:1 --to "$reg/test/node:v1" --insecure-registry "$reg"
assert_contains "$ERR" "0 blob(s) uploaded (0 bytes), 2 already there"
assert_eq "$(grep -c '"POST /v2/test/node/blobs/uploads/' registry.log || true)" "$posts" "uploads started by the second push"
assert_eq "$(grep -c '"PUT /v2/test/node/blobs/' registry.log || true)" "$puts" "blobs sent by the second push"
[ "$(grep -c '"HEAD /v2/test/node/blobs/' registry.log)" -ge 4 ] || fail "no HEAD before uploading"
ok "second push uploads no blob"

# Push REF to its own registry (no --to), by a tag in the store.
expect_exit 0 kina-image build --rootfs "$t" --tag "$reg/test/self:2"
self=$(jq_field "$OUT" .digest)
expect_exit 0 kina-image push "$reg/test/self:2" --insecure-registry "$reg"
assert_eq "$(jq_field "$OUT" .reference)" "$reg/test/self:2"
assert_eq "$(skopeo inspect --tls-verify=false "docker://$reg/test/self:2" | jq -r .Digest)" "$self"
ok "push REF to its own registry"

# A multi-platform index: two builds, one index of both (imported as an OCI layout).
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/multi:amd64 --platform linux/amd64
amd=$(jq_field "$OUT" .digest)
echo arm >"$t/etc/arch"
expect_exit 0 kina-image build --rootfs "$t" --tag kina.local/multi:arm64 --platform linux/arm64
arm=$(jq_field "$OUT" .digest)
python3 - "$KINA_HOME/images" lay "$amd" "$arm" <<'PY'
import hashlib, json, os, shutil, sys
store, out, amd, arm = sys.argv[1:]
os.makedirs(f"{out}/blobs/sha256")
def blob(d): return open(f"{store}/blobs/sha256/{d.split(':')[1]}", "rb").read()
def copy(d): shutil.copy(f"{store}/blobs/sha256/{d.split(':')[1]}", f"{out}/blobs/sha256/")
ms = []
for d, arch in ((amd, "amd64"), (arm, "arm64")):
    m = json.loads(blob(d)); copy(d); copy(m["config"]["digest"]); [copy(l["digest"]) for l in m["layers"]]
    ms.append({"mediaType": m["mediaType"], "digest": d, "size": len(blob(d)), "platform": {"os": "linux", "architecture": arch}})
body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": ms}).encode()
h = hashlib.sha256(body).hexdigest()
open(f"{out}/blobs/sha256/{h}", "wb").write(body)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "sha256:" + h,
           "size": len(body), "annotations": {"org.opencontainers.image.ref.name": "kina.local/multi:both"}}]}, open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
print("sha256:" + h, file=open("index.digest", "w"))
PY
idx=$(cat index.digest)
expect_exit 0 kina-image import lay
expect_exit 0 kina-image push kina.local/multi:both --to "$reg/test/multi:1" --insecure-registry "$reg" --platform linux/arm64
assert_eq "$(jq_field "$OUT" .digest)" "$idx" "pushed index digest"
assert_eq "$(jq_field "$OUT" .manifestDigest)" "$arm" "arm64 manifest"
assert_eq "sha256:$(skopeo inspect --raw --tls-verify=false "docker://$reg/test/multi:1" | sha256sum | cut -d' ' -f1)" "$idx"
for d in "$amd" "$arm"; do
  assert_eq "sha256:$(skopeo inspect --raw --tls-verify=false "docker://$reg/test/multi@$d" | sha256sum | cut -d' ' -f1)" "$d" "child manifest"
done
assert_eq "$(skopeo inspect --tls-verify=false --override-arch arm64 "docker://$reg/test/multi:1" | jq -r .Architecture)" arm64
expect_exit 0 kina-image --store "$TEST_TMP/fresh-multi" pull "$reg/test/multi:1" --insecure-registry "$reg" --platform linux/amd64
assert_eq "$(jq_field "$OUT" .manifestDigest)" "$amd"
# That pull kept only amd64's manifest: pushing the index from there is refused before anything is sent.
expect_exit 65 kina-image --store "$TEST_TMP/fresh-multi" push "$reg/test/multi:1" --to "$reg/test/partial:1" --insecure-registry "$reg" --platform linux/amd64
assert_contains "$ERR" "it lists $arm (linux/arm64) which is not in the store"
grep -q '/v2/test/partial/' registry.log && fail "a refused index push sent something"
ok "multi-platform index pushed with its manifests; an index with missing manifests refused (65)"

# Errors.
expect_exit 66 kina-image push kina.local/nothing:1 --to "$reg/test/x:1" --insecure-registry "$reg"
assert_contains "$ERR" "image kina.local/nothing:1: not in the store"
expect_exit 64 kina-image push kina.local/push:1 --to "$reg/Test/x"
expect_exit 64 kina-image push "$built"
assert_contains "$ERR" "needs --to DEST"
expect_exit 0 kina-image push "$built" --to "$reg/test/bydigest:1" --insecure-registry "$reg"
dead=$(free_port)
expect_exit 69 kina-image push kina.local/push:1 --to "127.0.0.1:$dead/test/x:1" --insecure-registry "127.0.0.1:$dead"
assert_contains "$ERR" "registry 127.0.0.1:$dead unreachable"
expect_exit 69 kina-image push kina.local/push:1 --to "$reg/test/x:1"
assert_contains "$ERR" "registry $reg unreachable"
ok "errors: 66 not in the store, 64 bad reference, 69 unreachable (TLS required without --insecure-registry)"

# Token auth: docker-registry asking a token service; push needs pull,push rights.
start_token_registry
expect_exit 78 kina-image push kina.local/push:1 --to "$treg/test/auth:1" --insecure-registry "$treg"
assert_contains "$ERR" "token service answered 401 (credentials tried: none (anonymous))"
mkdir -p "$HOME/.docker"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$treg" "$(printf user:secret | base64)" >"$HOME/.docker/config.json"
: >token.log
expect_exit 0 kina-image push kina.local/push:1 --to "$treg/test/auth:1" --insecure-registry "$treg"
assert_not_contains "$ERR" secret
grep -q "token scope=\['repository:test/auth:pull,push'\] service=\['kina-test'\] auth=Basic" token.log || fail "token request: $(cat token.log)"
assert_eq "$(skopeo inspect --tls-verify=false --creds user:secret "docker://$treg/test/auth:1" | jq -r .Digest)" "$built"
ok "token auth: anonymous refused (78), config.json credentials push"

n=$(grep -c '"action":"push"' "$KINA_HOME/audit/log.jsonl")
[ "$n" -ge 9 ] || fail "pushes not audited ($n)"
grep '"action":"push"' "$KINA_HOME/audit/log.jsonl" | grep '"exitCode":69' >/dev/null || fail "a failed push is not audited with its code"
grep -q secret "$KINA_HOME/audit/log.jsonl" && fail "a secret in the audit log"
ok "audit"
