#!/bin/bash
# bench/image/build.sh BUILD_DIR [TREE]: kina-image build of TREE (default
# /usr) against `tar -c | gzip` of the same tree (same gzip level 6, both
# single-threaded), timed in the same run; prints the ratio. Never asserts.
# Also checks that a second build gives the same digest (page cache warm for
# both: the first build's read warms it, so the tar runs after a warm-up read).
set -eu -o pipefail
build=$(realpath "${1:?usage: build.sh BUILD_DIR [TREE]}")
tree=$(realpath "${2:-/usr}")
kina="$build/tools/kina-image/kina-image"
work=$(mktemp -d /var/tmp/kina-bench-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
export KINA_HOME="$work/home"
cd "$work"

t() {  # t NAME CMD...: wall seconds and peak RSS (KiB)
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time.$name" "$@" >"$work/out.$name" 2>"$work/err.$name" || { cat "$work/err.$name" >&2; exit 1; }
  read -r secs rss <"$work/time.$name"
  eval "T_$name=$secs R_$name=$rss"
}
files=$(find "$tree" -xdev | wc -l)
size=$(du -sb "$tree" | cut -f1)
tar -C "$tree" -cf - . 2>/dev/null | cat >/dev/null  # warm the page cache for everyone
t tar sh -c "tar -C '$tree' --numeric-owner --xattrs --xattrs-include='*' -cf - . 2>/dev/null | gzip -6 -n >'$work/tar.gz'"
t kina "$kina" --store "$work/s1" build --rootfs "$tree" --tag bench/build:1
d1=$(jq -r .digest "$work/out.kina")
t kina2 "$kina" --store "$work/s2" build --rootfs "$tree" --tag bench/build:1
d2=$(jq -r .digest "$work/out.kina2")
layer=$(jq -r '.layers[0].size' "$work/out.kina")
r() { awk "BEGIN{printf \"%.2f\", $1 / $2}"; }
cat <<TXT
tree: $tree, $files entries, $size bytes
tar -c | gzip -6 -n          $T_tar s   $(stat -c %s "$work/tar.gz") bytes   1.00
kina-image build             $T_kina s   $layer bytes   $(r "$T_kina" "$T_tar") x tar|gzip   peak RSS $((R_kina / 1024)) MiB
kina-image build (again)     $T_kina2 s   $(r "$T_kina2" "$T_tar") x tar|gzip   same digest: $([ "$d1" = "$d2" ] && echo yes || echo "NO ($d1 != $d2)")
TXT
