#!/bin/bash
# bench/image/disk.sh BUILD_DIR IMAGE: image to bootable base disk against
# zcat of its layers, both timed by hyperfine in the same run (prints the
# ratio, never asserts).
#   IMAGE: an OCI or docker archive (e.g. a node image from
#          ~/.cache/kina/node-image/*.tar) or a directory (packed first with
#          kina-image build).
#   KINA_IMAGE_BEFORE=BINARY also times another kina-image (e.g. one built
#          without libext2fs: a directory, then mke2fs -d) on the same store.
#   RUNS=N hyperfine runs per command (default 5).
# Checks the disk with e2fsck -fn and against the directory unpack
# (tests/cli/image/treecmp.py) once, outside the timing.
set -eu -o pipefail
build=$(realpath "${1:?usage: disk.sh BUILD_DIR IMAGE}")
image=$(realpath "${2:?usage: disk.sh BUILD_DIR IMAGE}")
kina="$build/tools/kina-image/kina-image"
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /var/tmp/kina-bench-disk.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KINA_HOME="$work/home"
runs=${RUNS:-5}
cd "$work"

if [ -d "$image" ]; then
  "$kina" build --rootfs "$image" --tag bench/disk:1 >/dev/null
else
  "$kina" import "$image" --tag bench/disk:1 >/dev/null
fi
blobs=$("$kina" inspect bench/disk:1 | jq -r '.layers[].digest' | sed "s|^sha256:|$KINA_HOME/images/blobs/sha256/|")
for b in $blobs; do [ -f "$b" ] || { echo "layer blob $b not found" >&2; exit 1; }; done
echo "image: $(echo "$blobs" | wc -l) layer(s), $(du -ch $blobs | tail -1 | cut -f1) compressed" >&2

# Correctness once: clean, and the same tree as the directory unpack.
"$kina" unpack bench/disk:1 --disk "$work/check.ext4" >"$work/rec"
e2fsck -fn "$work/check.ext4" >/dev/null
"$kina" unpack bench/disk:1 --rootfs "$work/root" >/dev/null
python3 "$src/tests/cli/image/treecmp.py" "ext4:$work/check.ext4" "$work/root" >/dev/null ||
  echo "WARNING: the disk differs from the directory unpack" >&2
rm -rf "$work/root" "$work/check.ext4"
jq -r '"unpacked: \(.files) entries, \(.size) bytes of file data"' "$work/rec" >&2

cmds=(-n zcat "zcat $blobs >/dev/null" -n disk "$kina unpack bench/disk:1 --disk $work/d.ext4 >/dev/null")
if [ -n "${KINA_IMAGE_BEFORE:-}" ]; then
  cmds+=(-n before "$KINA_IMAGE_BEFORE unpack bench/disk:1 --disk $work/b.ext4 >/dev/null")
fi
sync
hyperfine --warmup 1 --runs "$runs" --prepare "rm -f $work/d.ext4 $work/b.ext4" --export-json "$work/h.json" "${cmds[@]}" >&2
jq -r '
  (.results[] | select(.command == "zcat") | .mean) as $z |
  "| command | mean (s) | min (s) | ratio (mean) |", "|---|---|---|---|",
  (.results[] | "| \(.command) | \(.mean * 100 | round / 100) | \(.min * 100 | round / 100) | \((.mean / $z) * 100 | round / 100) x zcat |")
' "$work/h.json"
