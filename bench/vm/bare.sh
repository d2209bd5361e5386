# bench/vm/bare.sh: the bare-boot reference of the VM benchmarks (sourced).
# bare_initramfs BUILD OUT: an initramfs whose /init is kina-init in probe
# mode, which powers the guest off as soon as it runs.
bare_initramfs() {
  local dir
  dir=$(mktemp -d)
  mkdir -p "$dir/dev"
  cp "$1/tools/kina-vm/kina-init" "$dir/init"
  echo "probe 1" > "$dir/kina.conf"
  (cd "$dir" && find . | busybox cpio -o -H newc 2>/dev/null) > "$2"
  rm -rf "$dir"
}
# bare_boot KERNEL INITRAMFS QEMU-ARGS...: one boot to /init and power-off
# under TCG on the machine type kina-vm uses.
bare_boot() {
  local kernel=$1 initrd=$2; shift 2
  qemu-system-x86_64 -M q35,sata=off,smbus=off -accel tcg "$@" -display none -nodefaults -no-user-config -no-reboot \
    -kernel "$kernel" -initrd "$initrd" -append "console=ttyS0 quiet panic=-1" </dev/null
}
