// guest_root.hpp: what Docker gives a kind node container and a VM does not,
// written by kina-init into the mounted guest root before switch_root
// (docs/backends.md, "Booting node images"). The root is untrusted: every
// file is reached through kina/inroot.hpp with no symlink followed on the way
// (an image's /etc or /kind that is a symlink is skipped, not followed), and
// written as a new file renamed over the old entry, so a symlink at the final
// name is replaced, never written through.
// Plain libc, no exceptions: kina-init is linked statically.
// Guest code (tools/kina-vm/guest/): static, libc only, no exceptions (kina-init
// is linked -static -fno-exceptions); the host shares wire.hpp and transfer.hpp.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "kina/inroot.hpp"

namespace kina::vm {

// What the host decided for this machine (from /kina.conf).
struct NodeIdentity {
  std::string hostname;    // the machine name
  std::string node_ip;     // the node's own address (cluster NIC, else the user NIC's)
  std::string machine_id;  // 32 lowercase hex digits
  std::string product_uuid;
};

// The tree kina-init writes in: ROOT is the guest's root directory, RUN its
// /run (a fresh tmpfs, where runtime units and drop-ins go).
class GuestRoot {
 public:
  using Log = std::function<void(const std::string&)>;

  GuestRoot(int root_fd, Log log) : root_(root_fd, InRoot::Symlinks::refuse), log_(std::move(log)) {}
  bool valid() const { return root_.valid(); }

  // Kind of the entry at PATH (relative to the root, no symlink followed on
  // the way or at the end): 0 when absent or unreachable, else S_IFMT bits.
  mode_t kind_of(std::string_view path) const {
    std::vector<std::string> comps;
    if (!inroot_components(path, comps, true) || comps.empty()) return 0;
    int pfd = root_.open_dir(comps, comps.size() - 1, false);
    if (pfd < 0) return 0;
    struct stat sb {};
    int rc = ::fstatat(pfd, comps.back().c_str(), &sb, AT_SYMLINK_NOFOLLOW);
    ::close(pfd);
    return rc == 0 ? (sb.st_mode & S_IFMT) : 0;
  }
  bool is_dir(std::string_view p) const { return kind_of(p) == S_IFDIR; }
  bool exists(std::string_view p) const { return kind_of(p) != 0; }

  // The target of the symlink at PATH ("" when it is not one).
  std::string link_target(std::string_view path) const {
    std::vector<std::string> comps;
    if (!inroot_components(path, comps, true) || comps.empty()) return {};
    int pfd = root_.open_dir(comps, comps.size() - 1, false);
    if (pfd < 0) return {};
    char buf[4096];
    ssize_t n = ::readlinkat(pfd, comps.back().c_str(), buf, sizeof buf);
    ::close(pfd);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
  }

  // Reads at most MAX bytes of the regular file at PATH ("" otherwise).
  std::string read(std::string_view path, size_t max = 4096) const {
    std::vector<std::string> comps;
    if (!inroot_components(path, comps, true) || comps.empty()) return {};
    int pfd = root_.open_dir(comps, comps.size() - 1, false);
    if (pfd < 0) return {};
    int fd = ::openat(pfd, comps.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    ::close(pfd);
    if (fd < 0) return {};
    std::string out;
    struct stat sb {};
    if (::fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) {
      out.resize(max);
      ssize_t n = ::read(fd, out.data(), max);
      out.resize(n > 0 ? static_cast<size_t>(n) : 0);
    }
    ::close(fd);
    return out;
  }

  // Writes CONTENT as the regular file PATH: a new file in PATH's parent
  // (which must exist: parents are created only when MKDIRS), renamed over
  // whatever non-directory was there. False (and a log line) on failure.
  bool write(std::string_view path, std::string_view content, mode_t mode, bool mkdirs = false) {
    std::vector<std::string> comps;
    if (!inroot_components(path, comps, true) || comps.empty()) return fail(path, EINVAL);
    int pfd = root_.open_dir(comps, comps.size() - 1, mkdirs);
    if (pfd < 0) return fail(path, errno);
    const std::string& name = comps.back();
    std::string tmp = ".kina-init." + name;
    ::unlinkat(pfd, tmp.c_str(), 0);
    int fd = ::openat(pfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return close_fail(pfd, path, errno);
    bool ok = ::fchmod(fd, mode) == 0;
    size_t off = 0;
    while (ok && off < content.size()) {
      ssize_t n = ::write(fd, content.data() + off, content.size() - off);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ok = false;
      else off += static_cast<size_t>(n);
    }
    int err = errno;
    ::close(fd);
    if (ok && ::renameat(pfd, tmp.c_str(), pfd, name.c_str()) != 0) ok = false, err = errno;
    if (!ok) ::unlinkat(pfd, tmp.c_str(), 0);
    return ok ? (::close(pfd), true) : close_fail(pfd, path, err);
  }

  // Makes PATH a symlink to TARGET, replacing a symlink or a missing entry
  // (never a regular file or a directory); the parent must exist unless MKDIRS.
  bool link(std::string_view path, const std::string& target, bool mkdirs = false) {
    std::vector<std::string> comps;
    if (!inroot_components(path, comps, true) || comps.empty()) return fail(path, EINVAL);
    int pfd = root_.open_dir(comps, comps.size() - 1, mkdirs);
    if (pfd < 0) return fail(path, errno);
    const std::string& name = comps.back();
    struct stat sb {};
    if (::fstatat(pfd, name.c_str(), &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISLNK(sb.st_mode))
      return close_fail(pfd, path, EEXIST);
    std::string tmp = ".kina-init." + name;
    ::unlinkat(pfd, tmp.c_str(), 0);
    if (::symlinkat(target.c_str(), pfd, tmp.c_str()) != 0) return close_fail(pfd, path, errno);
    if (::renameat(pfd, tmp.c_str(), pfd, name.c_str()) != 0) {
      int err = errno;
      ::unlinkat(pfd, tmp.c_str(), 0);
      return close_fail(pfd, path, err);
    }
    ::close(pfd);
    return true;
  }

  void say(const std::string& msg) const {
    if (log_) log_(msg);
  }

 private:
  bool fail(std::string_view path, int err) const {
    say("writing /" + std::string(path) + ": " + std::strerror(err));
    errno = err;
    return false;
  }
  bool close_fail(int fd, std::string_view path, int err) const {
    ::close(fd);
    return fail(path, err);
  }

  InRoot root_;
  Log log_;
};

// A machine-id systemd accepts: 32 lowercase hex digits, not all zero.
inline bool valid_machine_id(std::string_view id) {
  if (id.size() != 32 || id.find_first_not_of("0123456789abcdef") != std::string_view::npos) return false;
  return id.find_first_not_of('0') != std::string_view::npos;
}

// Whether a resolv.conf names a nameserver (a "nameserver" line, leading
// blanks allowed).
inline bool has_nameserver(std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (line.size() > 11 && line.substr(0, 10) == "nameserver" && (line[10] == ' ' || line[10] == '\t')) return true;
    pos = nl + 1;
  }
  return false;
}

// The iptables tools that point at one backend through Debian's alternatives.
inline constexpr const char* kIptablesTools[] = {"iptables",  "iptables-save",  "iptables-restore",
                                                 "ip6tables", "ip6tables-save", "ip6tables-restore"};

// "iptables-save" -> "iptables-nft-save"
inline std::string nft_variant(std::string_view tool) {
  std::string t(tool);
  size_t dash = t.find('-');
  return dash == std::string::npos ? t + "-nft" : t.substr(0, dash) + "-nft" + t.substr(dash);
}

// The /kubelet cgroup kind's kubelet config (cgroupRoot /kubelet) expects,
// made where the root cgroup holds processes (every VM): the root is exempt
// from cgroup v2's no-internal-processes rule, so its subtree_control can be
// written whatever cgroup.procs holds. cpu, memory and pids are required in
// /kubelet's subtree; the other controllers are enabled when they can be.
inline constexpr std::string_view kKubeletCgroupScript = R"(#!/bin/sh
# Written by kina-init at boot (docs/backends.md, "Booting node images").
set -u
cg=/sys/fs/cgroup
if [ ! -f "$cg/cgroup.controllers" ]; then
  # cgroup v1: the hierarchy kubelet's systemd driver names.
  [ -d "$cg/systemd" ] && mkdir -p "$cg/systemd/kubelet"
  exit 0
fi
enable() { # DIR: every controller DIR has, one at a time, in its subtree
  for c in $(cat "$1/cgroup.controllers"); do
    grep -qw "$c" "$1/cgroup.subtree_control" || echo "+$c" > "$1/cgroup.subtree_control" ||
      echo "kina: could not enable $c in $1" >&2
  done
}
enable "$cg"
mkdir -p "$cg/kubelet" || exit 1
enable "$cg/kubelet"
for c in cpu memory pids; do
  grep -qw "$c" "$cg/kubelet/cgroup.subtree_control" || { echo "kina: $c is not enabled in $cg/kubelet" >&2; exit 1; }
done
)";

inline constexpr std::string_view kKubeletDropIn =
    "# Written by kina-init at boot: kind's 11-kind.conf runs a script that\n"
    "# refuses a root cgroup holding processes, as every VM's does.\n"
    "[Service]\n"
    "ExecStartPre=\n"
    "ExecStartPre=/bin/sh /run/kina/kubelet-cgroup.sh\n";

// Writes the node's identity and the fixes for kind's container-only
// assumptions into the root. Each item is skipped (with a log line) when
// the image does not have what it applies to; nothing here stops a boot.
inline void prepare_guest_root(GuestRoot& r, const NodeIdentity& id) {
  // /etc/hostname and /etc/hosts, as Docker writes them for a container.
  if (r.is_dir("etc")) {
    if (!id.hostname.empty()) r.write("etc/hostname", id.hostname + "\n", 0644);
    std::string hosts =
        "# Written by kina-init at boot.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";
    if (!id.node_ip.empty() && !id.hostname.empty()) hosts += id.node_ip + "\t" + id.hostname + "\n";
    r.write("etc/hosts", hosts, 0644);
    // A machine-id of this machine, whatever the image holds (an empty or
    // "uninitialized" one would make systemd generate or defer its own).
    if (valid_machine_id(id.machine_id)) r.write("etc/machine-id", id.machine_id + "\n", 0444);
    // DNS: Docker writes a resolv.conf; a node image often has an empty
    // one. Kept only when it is a regular file naming a nameserver; else
    // the user-mode NIC's resolver (QEMU's 10.0.2.3).
    if (!has_nameserver(r.kind_of("etc/resolv.conf") == S_IFREG ? r.read("etc/resolv.conf", 65536) : std::string()))
      r.write("etc/resolv.conf", "# Written by kina-init at boot: QEMU's user-mode resolver.\nnameserver 10.0.2.3\n", 0644);
  } else {
    r.say("no /etc directory in the root: hostname, hosts and machine-id not written");
  }
  // kind's containerd hook copies these into every container.
  if (r.is_dir("kind") && !id.product_uuid.empty()) {
    r.write("kind/product_uuid", id.product_uuid + "\n", 0444);
    r.write("kind/product_name", "kina\n", 0444);
  }
  // One iptables backend: nft, the one kube-proxy and kindnetd pick.
  if (r.kind_of("etc/alternatives/iptables") == S_IFLNK && r.exists("usr/sbin/iptables-nft")) {
    int changed = 0;
    for (const char* tool : kIptablesTools) {
      std::string alt = std::string("etc/alternatives/") + tool, nft = nft_variant(tool);
      if (r.kind_of(alt) != S_IFLNK || !r.exists("usr/sbin/" + nft)) continue;
      if (r.link_target(alt) == "/usr/sbin/" + nft) continue;
      if (r.link(alt, "/usr/sbin/" + nft)) ++changed;
    }
    if (changed) r.say("iptables: the nft backend selected");
  }
  // kind's kubelet cgroup script cannot work in a VM: replace it.
  if (r.kind_of("etc/systemd/system/kubelet.service.d/11-kind.conf") == S_IFREG) {
    if (r.write("run/kina/kubelet-cgroup.sh", kKubeletCgroupScript, 0755, true))
      r.write("run/systemd/system/kubelet.service.d/12-kina-vm.conf", kKubeletDropIn, 0644, true);
  }
  // Without udev, dev-ttyS0.device never appears and serial-getty@ttyS0
  // waits for it for minutes, keeping the system "starting".
  bool udev = false;
  for (const char* p : {"lib/systemd/systemd-udevd", "usr/lib/systemd/systemd-udevd", "bin/udevadm", "usr/bin/udevadm"})
    udev = udev || r.exists(p);
  bool systemd = r.exists("usr/lib/systemd/systemd") || r.exists("lib/systemd/systemd");
  if (systemd && !udev) r.link("run/systemd/system/serial-getty@ttyS0.service", "/dev/null", true);
}

}  // namespace kina::vm
