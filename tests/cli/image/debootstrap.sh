#!/bin/bash
# The real thing behind image-acl: a Debian bookworm root with systemd made by
# debootstrap carries POSIX ACLs on /var/log/journal; packed as a layer by
# umoci (SCHILY.xattr.system.posix_acl_*, as docker writes them), it must
# unpack, keep them (directory and --disk) and compare equal with getfacl.
# Slow (a debootstrap with systemd, a few minutes) and needs the Debian
# mirror: run only with KINA_TEST_DEBOOTSTRAP=1, else skipped; skipped too
# without debootstrap, setfacl/getfacl or root.
source "$KINA_CLI_LIB"
source "$KINA_SRC/tests/cli/image/helpers.sh"
cd "$TEST_TMP"

[ "${KINA_TEST_DEBOOTSTRAP:-0}" = 1 ] || { echo "skip: set KINA_TEST_DEBOOTSTRAP=1 to run (slow, needs the Debian mirror)"; exit 77; }
command -v debootstrap >/dev/null || { echo "skip: debootstrap not installed"; exit 77; }
command -v getfacl >/dev/null || { echo "skip: getfacl not installed (package acl)"; exit 77; }
[ "$(id -u)" = 0 ] || { echo "skip: debootstrap needs root"; exit 77; }

# debootstrap's default mirror unless KINA_DEBIAN_MIRROR names another.
debootstrap --variant=minbase --include=systemd bookworm "$TEST_TMP/deb" ${KINA_DEBIAN_MIRROR:+"$KINA_DEBIAN_MIRROR"} >"$TEST_TMP/debootstrap.log" 2>&1 ||
  { tail -5 "$TEST_TMP/debootstrap.log"; echo "skip: debootstrap failed (mirror unreachable?)"; exit 77; }
getfacl -p -n "$TEST_TMP/deb/var/log/journal" >"$TEST_TMP/want.acl"
grep -q "^default:group:" "$TEST_TMP/want.acl" || fail "debootstrap's /var/log/journal has no default ACL: $(cat "$TEST_TMP/want.acl")"

umoci init --layout "$TEST_TMP/oci"
umoci new --image "$TEST_TMP/oci:deb"
umoci unpack --image "$TEST_TMP/oci:deb" "$TEST_TMP/bundle" >/dev/null
cp -a "$TEST_TMP/deb/." "$TEST_TMP/bundle/rootfs/"
umoci repack --image "$TEST_TMP/oci:deb" "$TEST_TMP/bundle"
expect_exit 0 kina-image import "$TEST_TMP/oci" --tag example.com/deb:systemd
expect_exit 0 kina-image unpack example.com/deb:systemd --rootfs "$TEST_TMP/root"
( cd "$TEST_TMP/deb" && getfacl -R -p -n var/log ) >"$TEST_TMP/want-all.acl"
( cd "$TEST_TMP/root" && getfacl -R -p -n var/log ) >"$TEST_TMP/got-all.acl"
diff -u "$TEST_TMP/want-all.acl" "$TEST_TMP/got-all.acl" || fail "ACLs under /var/log differ after unpack"
expect_exit 0 kina-image unpack example.com/deb:systemd --disk "$TEST_TMP/deb.ext4"
assert_contains "$(debugfs -R "ea_list /var/log/journal" "$TEST_TMP/deb.ext4" 2>/dev/null)" "system.posix_acl_default"
treecmp "ext4:$TEST_TMP/deb.ext4" "$TEST_TMP/root" || fail "the disk differs from the directory unpack"
ok "a debootstrapped systemd root unpacks with its ACLs (directory and --disk)"
