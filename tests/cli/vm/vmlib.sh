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

# boot_vm NAME ARGS...: boots with TCG, registers the supervisor for cleanup;
# the Machine record is in $OUT.
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
