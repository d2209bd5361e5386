// Unit tests of what kina-init writes into a guest root (tools/kina-vm/guest/guest_root.hpp):
// each item, and that no symlink in the image makes it write outside the root
// or through a link.
#define BOOST_TEST_MODULE vm_guest_root
#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "../test_support.hpp"
#include "guest/guest_root.hpp"

using namespace kina;
using namespace kina::vm;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void put(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

const NodeIdentity kId{"node1", "10.77.0.2", "0123456789abcdef0123456789abcdef", "6b1c2e0a-9a8f-4c1e-8d2b-3f4a5b6c7d8e"};

// Runs prepare_guest_root on ROOT; returns the log lines.
std::vector<std::string> prepare(const fs::path& root, const NodeIdentity& id = kId) {
  std::vector<std::string> log;
  int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  GuestRoot r(fd, [&](const std::string& m) { log.push_back(m); });
  ::close(fd);
  BOOST_REQUIRE(r.valid());
  prepare_guest_root(r, id);
  return log;
}

}  // namespace

BOOST_AUTO_TEST_CASE(identity_files) {
  unit::both_modes([] {
    unit::TempDir t;
    put(t.path / "etc/machine-id", "uninitialized\n");
    put(t.path / "etc/hostname", "image\n");
    fs::create_directories(t.path / "kind");
    prepare(t.path);
    BOOST_TEST(slurp(t.path / "etc/hostname") == "node1\n");
    BOOST_TEST(slurp(t.path / "etc/machine-id") == "0123456789abcdef0123456789abcdef\n");
    std::string hosts = slurp(t.path / "etc/hosts");
    BOOST_TEST(hosts.find("127.0.0.1\tlocalhost\n") != std::string::npos, hosts);
    BOOST_TEST(hosts.find("::1\tlocalhost") != std::string::npos, hosts);
    BOOST_TEST(hosts.find("\n10.77.0.2\tnode1\n") != std::string::npos, hosts);
    BOOST_TEST(slurp(t.path / "kind/product_uuid") == "6b1c2e0a-9a8f-4c1e-8d2b-3f4a5b6c7d8e\n");
    BOOST_TEST(slurp(t.path / "kind/product_name") == "kina\n");
    // No temporary file left beside them.
    for (const auto& e : fs::directory_iterator(t.path / "etc"))
      BOOST_TEST(e.path().filename().string().rfind(".kina-init.", 0) != 0, e.path());
  });
}

BOOST_AUTO_TEST_CASE(no_kind_dir_no_product_files_and_empty_machine_id_replaced) {
  unit::TempDir t;
  put(t.path / "etc/machine-id", "");
  prepare(t.path);
  BOOST_TEST(!fs::exists(t.path / "kind"));
  BOOST_TEST(slurp(t.path / "etc/machine-id") == "0123456789abcdef0123456789abcdef\n");
}

BOOST_AUTO_TEST_CASE(symlinks_are_replaced_never_followed) {
  unit::both_modes([] {
    unit::TempDir t, outside;
    put(outside.path / "hosts", "host's hosts\n");
    put(outside.path / "machine-id", "host's id\n");
    fs::create_directories(t.path / "etc");
    // Absolute links to host-looking paths and relative ones climbing out.
    fs::create_symlink(outside.path / "hosts", t.path / "etc/hosts");
    fs::create_symlink("../../../../../../../../" + (outside.path / "machine-id").string(), t.path / "etc/machine-id");
    fs::create_symlink(outside.path / "nothing", t.path / "etc/hostname");  // dangling
    fs::create_symlink(outside.path, t.path / "kind");                      // a directory elsewhere
    auto log = prepare(t.path);
    BOOST_TEST(slurp(outside.path / "hosts") == "host's hosts\n");
    BOOST_TEST(slurp(outside.path / "machine-id") == "host's id\n");
    BOOST_TEST(!fs::exists(outside.path / "nothing"));
    BOOST_TEST(!fs::exists(outside.path / "product_uuid"));
    BOOST_TEST(fs::is_regular_file(fs::symlink_status(t.path / "etc/hosts")));
    BOOST_TEST(fs::is_regular_file(fs::symlink_status(t.path / "etc/machine-id")));
    BOOST_TEST(slurp(t.path / "etc/hostname") == "node1\n");
    BOOST_TEST(fs::is_symlink(t.path / "kind"));  // left alone: not a directory of the root
  });
}

BOOST_AUTO_TEST_CASE(etc_symlink_is_not_entered) {
  unit::both_modes([] {
    unit::TempDir t, outside;
    fs::create_symlink(outside.path, t.path / "etc");
    auto log = prepare(t.path);
    BOOST_TEST(fs::is_empty(outside.path));
    BOOST_TEST(!log.empty());
  });
}

BOOST_AUTO_TEST_CASE(iptables_alternatives_point_at_nft) {
  unit::TempDir t;
  fs::create_directories(t.path / "etc/alternatives");
  for (std::string tool : kIptablesTools) {
    put(t.path / "usr/sbin" / nft_variant(tool), "nft");
    if (tool == "ip6tables-save") put(t.path / "etc/alternatives" / tool, "a file, not a link");
    else fs::create_symlink("/usr/sbin/legacy-" + tool, t.path / "etc/alternatives" / tool);
  }
  prepare(t.path);
  BOOST_TEST(fs::read_symlink(t.path / "etc/alternatives/iptables") == "/usr/sbin/iptables-nft");
  BOOST_TEST(fs::read_symlink(t.path / "etc/alternatives/iptables-restore") == "/usr/sbin/iptables-nft-restore");
  BOOST_TEST(fs::read_symlink(t.path / "etc/alternatives/ip6tables") == "/usr/sbin/ip6tables-nft");
  BOOST_TEST(slurp(t.path / "etc/alternatives/ip6tables-save") == "a file, not a link");
}

BOOST_AUTO_TEST_CASE(iptables_without_nft_is_left_alone) {
  unit::TempDir t;
  fs::create_directories(t.path / "etc/alternatives");
  fs::create_symlink("/usr/sbin/iptables-legacy", t.path / "etc/alternatives/iptables");
  prepare(t.path);
  BOOST_TEST(fs::read_symlink(t.path / "etc/alternatives/iptables") == "/usr/sbin/iptables-legacy");
}

BOOST_AUTO_TEST_CASE(nft_names) {
  BOOST_TEST(nft_variant("iptables") == "iptables-nft");
  BOOST_TEST(nft_variant("ip6tables-restore") == "ip6tables-nft-restore");
  BOOST_TEST(valid_machine_id("0123456789abcdef0123456789abcdef"));
  BOOST_TEST(!valid_machine_id("00000000000000000000000000000000"));
  BOOST_TEST(!valid_machine_id("uninitialized"));
  BOOST_TEST(!valid_machine_id("0123456789ABCDEF0123456789abcdef"));
}

BOOST_AUTO_TEST_CASE(kubelet_drop_in_only_with_kinds_drop_in) {
  unit::TempDir t, u;
  put(t.path / "etc/systemd/system/kubelet.service.d/11-kind.conf", "[Service]\n");
  fs::create_directories(t.path / "run");
  fs::create_directories(u.path / "etc/systemd/system/kubelet.service.d");
  fs::create_directories(u.path / "run");
  prepare(t.path);
  prepare(u.path);
  std::string dropin = slurp(t.path / "run/systemd/system/kubelet.service.d/12-kina-vm.conf");
  BOOST_TEST(dropin.find("\nExecStartPre=\nExecStartPre=/bin/sh /run/kina/kubelet-cgroup.sh\n") != std::string::npos, dropin);
  BOOST_TEST(((fs::status(t.path / "run/kina/kubelet-cgroup.sh").permissions() & fs::perms::owner_exec) != fs::perms::none));
  BOOST_TEST(!fs::exists(u.path / "run/systemd/system/kubelet.service.d/12-kina-vm.conf"));
  BOOST_TEST(!fs::exists(u.path / "run/kina"));
}

BOOST_AUTO_TEST_CASE(serial_getty_masked_only_without_udev) {
  unit::TempDir no_udev, with_udev, no_systemd;
  put(no_udev.path / "usr/lib/systemd/systemd", "");
  put(with_udev.path / "usr/lib/systemd/systemd", "");
  put(with_udev.path / "usr/bin/udevadm", "");
  fs::create_directories(no_systemd.path / "etc");
  for (auto* t : {&no_udev, &with_udev, &no_systemd}) {
    fs::create_directories(t->path / "run");
    prepare(t->path);
  }
  BOOST_TEST(fs::read_symlink(no_udev.path / "run/systemd/system/serial-getty@ttyS0.service") == "/dev/null");
  BOOST_TEST(!fs::exists(fs::symlink_status(with_udev.path / "run/systemd/system/serial-getty@ttyS0.service")));
  BOOST_TEST(!fs::exists(fs::symlink_status(no_systemd.path / "run/systemd")));
}

BOOST_AUTO_TEST_CASE(resolv_conf_kept_only_with_a_nameserver) {
  unit::TempDir empty, kept, linked;
  put(empty.path / "etc/resolv.conf", "# nothing\n");
  put(kept.path / "etc/resolv.conf", "search example\n  nameserver 192.0.2.53\n");
  fs::create_directories(linked.path / "etc");
  fs::create_symlink("/run/systemd/resolve/stub-resolv.conf", linked.path / "etc/resolv.conf");
  for (auto* t : {&empty, &kept, &linked}) prepare(t->path);
  BOOST_TEST(slurp(empty.path / "etc/resolv.conf").find("\nnameserver 10.0.2.3\n") != std::string::npos);
  BOOST_TEST(slurp(kept.path / "etc/resolv.conf") == "search example\n  nameserver 192.0.2.53\n");
  BOOST_TEST(fs::is_regular_file(fs::symlink_status(linked.path / "etc/resolv.conf")));
  BOOST_TEST(has_nameserver("nameserver\t1.1.1.1"));
  BOOST_TEST(!has_nameserver("#nameserver 1.1.1.1\nnameservers 1"));
}
