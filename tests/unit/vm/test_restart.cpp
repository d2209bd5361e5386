// Unit tests of what `kina-vm start` does with a stopped machine's record
// (tools/kina-vm/restart.hpp) and of taking its address again (reserve_ip in
// tools/kina-vm/network.hpp).
#define BOOST_TEST_MODULE vm_restart
#include <stdlib.h>

#include <boost/test/unit_test.hpp>

#include "network.hpp"
#include "restart.hpp"

using namespace kina;
using namespace kina::vm;

namespace {

struct TempDir {
  fsys::path path;
  TempDir() {
    char tmpl[] = "/tmp/kina-unit-restart.XXXXXX";
    BOOST_REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fsys::remove_all(path, ec);
  }
};

void touch(const fsys::path& p) { BOOST_REQUIRE(write_file_atomic(p, "x", 0644).ok()); }

Spec recorded(const fsys::path& dir) {
  Spec s;
  s.name = "m1";
  s.accel = "kvm";
  s.qemu_argv = {"qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-uuid", "u", "-kernel", (dir / "vmlinuz").string(),
                 "-initrd", "initramfs.cpio", "-append", "console=ttyS0 quiet kina.time=1000 rw xkina.time=7",
                 "-drive", "file=disk.qcow2,format=qcow2,if=virtio", "-drive",
                 fmt::format("file={},format=raw,if=virtio,readonly=on", (dir / "modules.ext4").string())};
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(clock_argument_is_refreshed_and_nothing_else) {
  TempDir t;
  Spec s = recorded(t.path);
  auto before = s.qemu_argv;
  refresh_clock_arg(s.qemu_argv, 1234567);
  BOOST_TEST(s.qemu_argv[12] == "console=ttyS0 quiet kina.time=1234567 rw xkina.time=7");
  s.qemu_argv[12] = before[12];
  BOOST_TEST(s.qemu_argv == before);
  std::vector<std::string> last = {"-append", "a kina.time=5"};
  refresh_clock_arg(last, 6);
  BOOST_TEST(last[1] == "a kina.time=6");
}

BOOST_AUTO_TEST_CASE(a_console_qemu_wrote_itself_goes_through_the_supervisor_after_start) {
  TempDir d;
  Spec s = recorded(d.path);
  s.qemu_argv.insert(s.qemu_argv.end(), {"-chardev", "file,id=con,path=console.log", "-serial", "chardev:con", "-chardev",
                                         "socket,id=agent,path=agent.sock,server=on,wait=off"});
  auto want = s.qemu_argv;
  want[want.size() - 5] = "file,id=con,path=console.fifo";
  upgrade_console_arg(s.qemu_argv);
  BOOST_TEST(s.qemu_argv == want);
  upgrade_console_arg(s.qemu_argv);  // already the FIFO: unchanged
  BOOST_TEST(s.qemu_argv == want);
  BOOST_TEST(console_chardev() == "file,id=con,path=console.fifo");
}

BOOST_AUTO_TEST_CASE(kvm_machine_falls_back_to_tcg) {
  TempDir t;
  Spec s = recorded(t.path);
  use_tcg(s);
  BOOST_TEST(s.accel == "tcg");
  BOOST_TEST(s.qemu_argv[2] == "tcg");
  BOOST_TEST((std::find(s.qemu_argv.begin(), s.qemu_argv.end(), "-cpu") == s.qemu_argv.end()));
  BOOST_TEST(s.qemu_argv[3] == "-uuid");
}

BOOST_AUTO_TEST_CASE(missing_inputs_are_66_naming_them) {
  TempDir t;
  Spec s = recorded(t.path);
  auto why = [&]() -> std::string {
    auto st = check_start_inputs(t.path, s);
    if (st) return "";
    BOOST_TEST((st.error().exit == Exit::no_input));
    return st.error().why;
  };
  BOOST_TEST(why().find("its kernel " + (t.path / "vmlinuz").string() + " is gone") == 0);
  touch(t.path / "vmlinuz");
  BOOST_TEST(why().find("its initramfs " + (t.path / "initramfs.cpio").string()) == 0);
  touch(t.path / "initramfs.cpio");
  BOOST_TEST(why().find("its disk " + (t.path / "disk.qcow2").string()) == 0);
  touch(t.path / "disk.qcow2");
  BOOST_TEST(why().find("its modules disk " + (t.path / "modules.ext4").string()) == 0);
  touch(t.path / "modules.ext4");
  BOOST_TEST(why() == "");
  s.mounts = {(t.path / "shared").string() + ":/data:ro"};
  s.virtiofsd = (t.path / "virtiofsd").string();
  BOOST_TEST(why().find("its mounted directory") == 0);
  fsys::create_directory(t.path / "shared");
  BOOST_TEST(why().find("its virtiofsd") == 0);
}

BOOST_AUTO_TEST_CASE(address_is_taken_again_exactly) {
  TempDir t;
  // A cluster's layout: a lease is only kept while its machine's directory
  // exists (allocate_ip drops the others).
  fsys::path net = t.path / "networks" / "net1";
  fsys::create_directories(net);
  for (const char* m : {"m1", "m2", "m3", "m4", "m5", "m6"}) fsys::create_directories(t.path / "machines" / m);
  Network n{"net1", "c1", *parse_cidr("10.79.0.0/24"), net};
  auto leases = [&] { return *read_leases(n); };
  // Free: leased again.
  BOOST_REQUIRE(reserve_ip(n, "m1", "10.79.0.5").ok());
  BOOST_TEST(leases().at("10.79.0.5") == "m1");
  // Still the machine's: kept, nothing added.
  BOOST_REQUIRE(reserve_ip(n, "m1", "10.79.0.5").ok());
  BOOST_TEST(leases().size() == 1u);
  // Another machine's: 73 naming it; the leases unchanged.
  auto other = reserve_ip(n, "m2", "10.79.0.5");
  BOOST_REQUIRE(!other.ok());
  BOOST_TEST((other.error().exit == Exit::cant_create));
  BOOST_TEST(other.error().why.find("leased to machine m1") != std::string::npos, other.error().why);
  BOOST_TEST(leases().size() == 1u);
  // Outside the subnet (a network recreated with another one): 65.
  auto outside = reserve_ip(n, "m1", "10.80.0.5");
  BOOST_REQUIRE(!outside.ok());
  BOOST_TEST((outside.error().exit == Exit::data));
  // An address the allocator then hands out is never the reserved one.
  auto next = allocate_ip(n, "m3");
  BOOST_REQUIRE(next.ok());
  BOOST_TEST(*next == "10.79.0.2");
  BOOST_REQUIRE(reserve_ip(n, "m4", "10.79.0.3").ok());
  BOOST_TEST(*allocate_ip(n, "m5") == "10.79.0.4");
  BOOST_TEST(*allocate_ip(n, "m6") == "10.79.0.6");
  // A lease whose machine directory is gone (a failed boot on a full disk
  // that could not rewrite the leases) is stale: the next allocation drops
  // it, and its address is free again.
  fsys::remove(t.path / "machines" / "m3");
  BOOST_TEST(*allocate_ip(n, "m7") == "10.79.0.2");
  BOOST_TEST(leases().count("10.79.0.2") == 1u);
  BOOST_TEST(leases().at("10.79.0.2") == "m7");
  BOOST_TEST(leases().at("10.79.0.5") == "m1");
}
