# vmlib.sh: helpers for kina-vm CLI tests (sourced after $KINA_CLI_LIB).
# The kernel package is downloaded once per machine into KINA_KERNEL_CACHE.
export KINA_KERNEL_CACHE="${KINA_KERNEL_CACHE:-/tmp/kina-kernel-cache}"
mkdir -p "$KINA_KERNEL_CACHE"

command -v qemu-system-x86_64 >/dev/null || fail "qemu-system-x86_64 is missing (tools/kina-vm/packages.debian)"
command -v busybox >/dev/null || fail "busybox is missing (busybox-static)"

# fetch_kernel: registers the kernel; sets KERNEL_VERSION.
fetch_kernel() {
  expect_exit 0 kina-vm kernel --fetch
  KERNEL_VERSION=$(jq_field "$OUT" .version)
  [ -n "$KERNEL_VERSION" ] || fail "no kernel version in: $OUT"
}

# make_rootfs DIR: a busybox-static root filesystem.
make_rootfs() {
  local dir=$1
  mkdir -p "$dir/bin" "$dir/etc" "$dir/root" "$dir/tmp" "$dir/home/user"
  cp "$(command -v busybox)" "$dir/bin/busybox"
  local a
  for a in $("$dir/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$dir/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' > "$dir/etc/passwd"
  printf 'root:x:0:\nuser:x:1000:\n' > "$dir/etc/group"
  chown 1000:1000 "$dir/home/user"
}

# The workload most tests boot: a shell that idles as PID 1.
IDLE=(/bin/sh -c 'while :; do sleep 3600; done')

# boot_vm NAME ARGS...: boots with TCG (--timeout $BOOT_TIMEOUT, default
# 120s), registers the supervisor for cleanup; the Machine record is in $OUT.
boot_vm() {
  local name=$1; shift
  expect_exit 0 kina-vm boot --name "$name" --accel tcg --timeout "${BOOT_TIMEOUT:-120s}" "$@" </dev/null
  local dir
  dir=$(jq_field "$OUT" .dir)
  track_pid "$(cat "$dir/supervisor.pid")"
}

# The processes a machine or network may leave behind, by KINA_HOME.
leftovers() {
  ps -eo pid,args | grep -F "$KINA_HOME" | grep -v grep || true
}

# systemd_rootfs DIR: a debootstrapped Debian bookworm (minbase + systemd,
# kmod, udev, dbus) unpacked into DIR. The tree is kept as a tarball in
# $KINA_ROOTFS_CACHE (default /tmp/kina-rootfs-cache) so reruns skip the
# 40 s debootstrap.
systemd_rootfs() {
  local dir=$1
  command -v debootstrap >/dev/null || fail "debootstrap is missing (tools/kina-vm/packages.debian)"
  local cache="${KINA_ROOTFS_CACHE:-/tmp/kina-rootfs-cache}"
  mkdir -p "$cache"
  local tarball="$cache/bookworm-systemd.tar"
  (
    flock 9
    if [ ! -s "$tarball" ]; then
      debootstrap --variant=minbase --include=systemd,systemd-sysv,kmod,udev,dbus bookworm \
        "$TEST_TMP/bootstrap" ${KINA_DEBIAN_MIRROR:+"$KINA_DEBIAN_MIRROR"} > "$TEST_TMP/debootstrap.log" 2>&1 ||
        { tail -5 "$TEST_TMP/debootstrap.log" >&2; exit 1; }
      tar -C "$TEST_TMP/bootstrap" --numeric-owner -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
      rm -rf "$TEST_TMP/bootstrap"
    fi
  ) 9>"$cache/.lock" || fail "debootstrap failed"
  mkdir -p "$dir"
  tar -C "$dir" --numeric-owner -xpf "$tarball"
}

# guest_state NAME: what `systemctl is-system-running` answers now (no retry).
guest_state() {
  kina-vm exec "$1" -- systemctl is-system-running 2>/dev/null || true
}
