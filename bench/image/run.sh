#!/bin/bash
# bench/image/run.sh BUILD_DIR [ROOTFS]: kina-image against the reference tools
# on one realistic image, all timed in the same run (prints ratios, never asserts).
#   unpack: kina-image unpack vs umoci unpack, tar -xzf of the same layer, zcat > /dev/null
#   disk:   kina-image unpack --disk (ext4 straight from the layer, libext2fs) vs zcat
#           (bench/image/disk.sh: the same for any image, e.g. a node image, with hyperfine)
#   pull:   kina-image pull vs skopeo copy, from the same local docker-registry
# The image: a Debian bookworm minbase rootfs made with debootstrap (or ROOTFS),
# packed with umoci as one gzip layer. Peak RSS from /usr/bin/time -v.
set -eu -o pipefail
build=$(realpath "${1:?usage: run.sh BUILD_DIR [ROOTFS]}")
kina="$build/tools/kina-image/kina-image"
src=$(cd "$(dirname "$0")/../.." && pwd)  # before the cd below: $0 may be relative
work=$(mktemp -d /var/tmp/kina-bench-image.XXXXXX)
pids=()
trap 'for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
export KINA_HOME="$work/home"
cd "$work"

rootfs=${2:-}
if [ -z "$rootfs" ]; then
  echo "debootstrap --variant=minbase bookworm ..." >&2
  debootstrap --variant=minbase bookworm "$work/debootstrap" ${KINA_DEBIAN_MIRROR:+"$KINA_DEBIAN_MIRROR"} >/dev/null
  rootfs="$work/debootstrap"
fi
umoci init --layout oci >/dev/null
umoci new --image oci:deb
umoci unpack --image oci:deb bundle >/dev/null
cp -a "$rootfs/." bundle/rootfs/
umoci repack --image oci:deb bundle
rm -rf bundle
files=$(find "$rootfs" | wc -l)
"$kina" import oci --tag bench/deb:1 >/dev/null
layer=$("$kina" inspect bench/deb:1 | jq -r '.layers[0].digest' | cut -d: -f2)
blob="oci/blobs/sha256/$layer"
echo "image: $files files, layer $(du -h "$blob" | cut -f1) gzip" >&2

sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
# t NAME CMD...: wall seconds and peak RSS (KiB) of one run.
t() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time.$name" "$@" >/dev/null 2>"$work/err.$name" || { cat "$work/err.$name" >&2; exit 1; }
  read -r secs rss <"$work/time.$name"
  eval "T_$name=$secs R_$name=$rss"
}
best() {  # best of 3, cleaning between runs with $clean
  local name=$1 clean=$2; shift 2
  local b=""
  for _ in 1 2 3; do eval "$clean"; t "$name" "$@"; eval "local s=\$T_$name"; if [ -z "$b" ] || awk "BEGIN{exit !($s < $b)}"; then b=$s; fi; done
  eval "T_$name=$b"
}
best zcat "true" sh -c "zcat '$blob' >/dev/null"
best tar "rm -rf tarout; mkdir tarout" tar -xzf "$blob" -C tarout --numeric-owner --xattrs --xattrs-include='*'
best umoci "rm -rf ubundle" umoci unpack --image oci:deb ubundle
best kina "rm -rf kroot" "$kina" unpack bench/deb:1 --rootfs "$work/kroot"
best disk "rm -f disk.ext4" "$kina" unpack bench/deb:1 --disk "$work/disk.ext4"
python3 "${KINA_SRC:-$src}/tests/cli/image/treecmp.py" kroot ubundle/rootfs >/dev/null || echo "WARNING: kina and umoci trees differ" >&2

# Pull from a local registry.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: 127.0.0.1:%s}\n' "$work/reg" "$port" >reg.yml
docker-registry serve reg.yml >reg.log 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
skopeo --insecure-policy copy -q --dest-tls-verify=false oci:oci:deb "docker://127.0.0.1:$port/bench/deb:1"
best pull "rm -rf pstore" "$kina" --store "$work/pstore" pull "127.0.0.1:$port/bench/deb:1" --insecure-registry "127.0.0.1:$port"
best pullv "rm -rf pstore" "$kina" --store "$work/pstore" pull "127.0.0.1:$port/bench/deb:1" --insecure-registry "127.0.0.1:$port" --verify-diffids
best skopeo "rm -rf sdir" skopeo --insecure-policy copy -q --src-tls-verify=false "docker://127.0.0.1:$port/bench/deb:1" oci:sdir:deb

r() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
cat <<TXT
| measurement | seconds | peak RSS (MiB) | ratio |
|---|---|---|---|
| zcat > /dev/null (decompression floor) | $T_zcat | - | 1.00 |
| tar -xzf (same layer) | $T_tar | $((R_tar / 1024)) | $(r "$T_tar" "$T_zcat") x zcat |
| umoci unpack | $T_umoci | $((R_umoci / 1024)) | $(r "$T_umoci" "$T_zcat") x zcat |
| kina-image unpack --rootfs | $T_kina | $((R_kina / 1024)) | $(r "$T_kina" "$T_tar") x tar, $(r "$T_kina" "$T_umoci") x umoci, $(r "$T_kina" "$T_zcat") x zcat |
| kina-image unpack --disk (libext2fs from the layer stream + e2fsck -fn) | $T_disk | $((R_disk / 1024)) | $(r "$T_disk" "$T_zcat") x zcat |
| skopeo copy (registry -> OCI dir) | $T_skopeo | $((R_skopeo / 1024)) | 1.00 |
| kina-image pull | $T_pull | $((R_pull / 1024)) | $(r "$T_pull" "$T_skopeo") x skopeo |
| kina-image pull --verify-diffids | $T_pullv | $((R_pullv / 1024)) | $(r "$T_pullv" "$T_skopeo") x skopeo |
TXT
echo "image: $files files; layer $(stat -c %s "$blob") bytes gzip; best of 3 runs each" 
