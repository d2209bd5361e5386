#!/bin/bash
# POSIX ACLs in layers: a tree with ACLs made by setfacl, as debootstrap's
# systemd leaves on /var/log/journal (group adm and systemd-journal may read
# the journal, inherited by new files through the default ACL), tarred by GNU
# tar in both of its ways (--xattrs --xattrs-include='*': SCHILY.xattr.system.
# posix_acl_*, as docker layers carry them; --acls: SCHILY.acl.*), imported,
# unpacked to a directory and to an ext4 disk, and compared with getfacl.
# (A full debootstrap is too slow for every run: image-debootstrap does one
# with KINA_TEST_DEBOOTSTRAP=1.) Run as root only: ACLs naming groups need it.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"

command -v setfacl >/dev/null && command -v getfacl >/dev/null || { echo "skip: setfacl/getfacl not installed (package acl)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skip: needs root (ACLs with named groups, owners)"; exit 77; }

# The source tree: like debootstrap's /var/log/journal, and a file with an ACL.
r="$TEST_TMP/src"
mkdir -p "$r/var/log/journal/abc" "$r/etc"
echo x >"$r/etc/shared"
# GNU tar --acls stores names ("group:adm:r-x"): they are looked up in the
# image's own /etc/group and /etc/passwd, never the host's.
printf 'root:x:0:\nadm:x:4:\n' >"$r/etc/group"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$r/etc/passwd"
chmod 2755 "$r/var/log/journal"
setfacl -m g:adm:r-x,g:4242:r-x,m:rwx -m d:g:adm:r-x,d:g:4242:r-x,d:m:r-x "$r/var/log/journal"
setfacl -m u:1234:rw- "$r/etc/shared"
( cd "$r" && getfacl -R -p -n . ) >"$TEST_TMP/want.acl"
grep -q "default:group:4:r-x" "$TEST_TMP/want.acl" || fail "setfacl did not set the default ACL: $(cat "$TEST_TMP/want.acl")"

# One image per GNU tar form.
make_image() {  # make_image TAG TAR-OPTION...
  local tag=$1
  shift
  tar --format=posix "$@" -C "$r" -cf "$TEST_TMP/$tag.tar" .
  umoci init --layout "$TEST_TMP/oci-$tag"
  umoci new --image "$TEST_TMP/oci-$tag:$tag"
  umoci raw add-layer --image "$TEST_TMP/oci-$tag:$tag" "$TEST_TMP/$tag.tar"
}
make_image xattr --xattrs --xattrs-include='*'
make_image acls --acls
grep -aq "SCHILY.xattr.system.posix_acl_default" "$TEST_TMP/xattr.tar" || fail "GNU tar did not store the ACL as an xattr"
grep -aq "SCHILY.acl.default" "$TEST_TMP/acls.tar" || fail "GNU tar did not store the ACL in its own form"

for tag in xattr acls; do
  expect_exit 0 kina-image import "$TEST_TMP/oci-$tag" --tag "example.com/acl:$tag"
  expect_exit 0 kina-image unpack "example.com/acl:$tag" --rootfs "$TEST_TMP/root-$tag"
  ( cd "$TEST_TMP/root-$tag" && getfacl -R -p -n . ) >"$TEST_TMP/got-$tag.acl"
  diff -u "$TEST_TMP/want.acl" "$TEST_TMP/got-$tag.acl" || fail "$tag: ACLs differ after unpack"
  # The default ACL works: a file made in the journal directory inherits it.
  touch "$TEST_TMP/root-$tag/var/log/journal/new"
  getfacl -p -n "$TEST_TMP/root-$tag/var/log/journal/new" | grep -q "^group:4:r-x" || fail "$tag: default ACL not inherited"
  ok "unpack keeps POSIX ACLs ($tag form)"

  # --disk: libext2fs writes them into the ext4 image (in ext4's own ACL
  # format), and the mode follows the access ACL as on the directory.
  expect_exit 0 kina-image unpack "example.com/acl:$tag" --disk "$TEST_TMP/$tag.ext4"
  rm "$TEST_TMP/root-$tag/var/log/journal/new"
  treecmp --ignore-dir-mtime "ext4:$TEST_TMP/$tag.ext4" "$TEST_TMP/root-$tag" || fail "$tag: the disk differs from the directory"
  e2fsck -fn "$TEST_TMP/$tag.ext4" >/dev/null || fail "$tag: e2fsck reports problems"
  ea=$(debugfs -R "ea_list /var/log/journal" "$TEST_TMP/$tag.ext4" 2>/dev/null)
  assert_contains "$ea" "system.posix_acl_access"
  assert_contains "$ea" "system.posix_acl_default"
  assert_contains "$(debugfs -R "ea_list /etc/shared" "$TEST_TMP/$tag.ext4" 2>/dev/null)" "system.posix_acl_access"
  ok "--disk keeps POSIX ACLs ($tag form)"
done

# Names resolve in the image: the same layer with adm as gid 77 in its own
# /etc/group gets group:77, and a name the image does not know is refused.
printf 'root:x:0:\nadm:x:77:\n' >"$r/etc/group"
make_image remap --acls
expect_exit 0 kina-image import "$TEST_TMP/oci-remap" --tag example.com/acl:remap
expect_exit 0 kina-image unpack example.com/acl:remap --rootfs "$TEST_TMP/root-remap"
getfacl -p -n "$TEST_TMP/root-remap/var/log/journal" | grep -q "^group:77:r-x" || fail "ACL names not resolved in the image's /etc/group"
printf 'root:x:0:\n' >"$r/etc/group"
make_image unknown --acls
expect_exit 0 kina-image import "$TEST_TMP/oci-unknown" --tag example.com/acl:unknown
expect_exit 65 kina-image unpack example.com/acl:unknown --rootfs "$TEST_TMP/root-unknown"
assert_contains "$ERR" "its ACL names the group \"adm\", which is not in the image's /etc/group"
[ ! -e "$TEST_TMP/root-unknown" ] || fail "a refused unpack left its root"
ok "ACL names resolved in the image, not on the host"

# Other system.* attributes are still refused, naming the entry and the attribute.
python3 - "$TEST_TMP/bad.tar" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("d"); ti.type = tarfile.DIRTYPE; ti.mode = 0o755
    ti.pax_headers = {"SCHILY.xattr.system.nfs4_acl": "x"}
    t.addfile(ti)
PY
umoci init --layout "$TEST_TMP/oci-bad"
umoci new --image "$TEST_TMP/oci-bad:bad"
umoci raw add-layer --image "$TEST_TMP/oci-bad:bad" "$TEST_TMP/bad.tar"
expect_exit 0 kina-image import "$TEST_TMP/oci-bad" --tag example.com/acl:bad
expect_exit 65 kina-image unpack example.com/acl:bad --rootfs "$TEST_TMP/root-bad"
assert_contains "$ERR" "extended attribute \"system.nfs4_acl\" is not in the user, security or trusted namespace, nor a POSIX ACL"
[ ! -e "$TEST_TMP/root-bad" ] || fail "a refused unpack left its root"
ok "other system.* attributes refused"
