// Unit tests of kernel.hpp: depends= from .modinfo, dependency order
// (compressed modules included), and the initramfs cpio.
#define BOOST_TEST_MODULE vm_kernel
#include <boost/test/unit_test.hpp>

#include "../test_support.hpp"

#include <cstdlib>

#include <archive.h>
#include <archive_entry.h>

#include "kernel.hpp"

using namespace kina;
using namespace kina::vm;
using kina::unit::TempDir;
using kina::unit::both_modes;

namespace {

// A minimal ELF64 relocatable object with a .modinfo section.
std::string make_ko(const std::string& modinfo) {
  std::string shstr = std::string("\0.shstrtab\0.modinfo\0", 20);
  std::string out(sizeof(Elf64_Ehdr), '\0');
  size_t shstr_off = out.size();
  out += shstr;
  size_t info_off = out.size();
  out += modinfo;
  while (out.size() % 8) out += '\0';
  size_t sh_off = out.size();
  Elf64_Shdr sh[3]{};
  sh[1].sh_name = 1;
  sh[1].sh_type = SHT_STRTAB;
  sh[1].sh_offset = shstr_off;
  sh[1].sh_size = shstr.size();
  sh[2].sh_name = 11;
  sh[2].sh_type = SHT_PROGBITS;
  sh[2].sh_offset = info_off;
  sh[2].sh_size = modinfo.size();
  out.append(reinterpret_cast<const char*>(sh), sizeof sh);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = ELFCLASS64;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_type = ET_REL;
  eh.e_shoff = sh_off;
  eh.e_shentsize = sizeof(Elf64_Shdr);
  eh.e_shnum = 3;
  eh.e_shstrndx = 1;
  std::memcpy(out.data(), &eh, sizeof eh);
  return out;
}

std::string info(const std::string& deps) { return std::string("license=GPL\0depends=", 20) + deps + std::string("\0vermagic=6.1\0", 13); }

void put(const fsys::path& p, const std::string& data) {
  fsys::create_directories(p.parent_path());
  BOOST_REQUIRE(write_file_atomic(p, data, 0644).ok());
}

}  // namespace

BOOST_AUTO_TEST_CASE(depends_are_read_from_modinfo) {
  auto d = module_depends(make_ko(info("virtio,virtio_ring")), "x.ko");
  BOOST_REQUIRE(d.ok());
  BOOST_TEST((*d == std::vector<std::string>{"virtio", "virtio_ring"}));
  auto none = module_depends(make_ko(info("")), "y.ko");
  BOOST_REQUIRE(none.ok());
  BOOST_TEST(none->empty());
}

BOOST_AUTO_TEST_CASE(bad_modules_are_errors_not_crashes) {
  BOOST_TEST(!module_depends("not an elf", "a.ko").ok());
  std::string ko = make_ko(info("a"));
  for (size_t n : {size_t{0}, size_t{10}, sizeof(Elf64_Ehdr), ko.size() - 1}) {
    auto r = module_depends(ko.substr(0, n), "t.ko");
    BOOST_TEST(!r.ok());
    BOOST_TEST((r.error().exit == Exit::data));
  }
}

BOOST_AUTO_TEST_CASE(resolve_orders_dependencies_first_and_decompresses) {
  TempDir t;
  fsys::path k = t.path / "kernel";
  put(k / "drivers/a.ko", make_ko(info("")));
  put(k / "drivers/b-c.ko", make_ko(info("a")));
  put(k / "net/top.ko", make_ko(info("b_c,a,builtin_one")));
  put(k / "net/zz.ko", make_ko(info("top")));
  BOOST_REQUIRE(std::system(("xz -q " + (k / "net/zz.ko").string()).c_str()) == 0);
  BOOST_REQUIRE(fsys::exists(k / "net/zz.ko.xz"));
  auto r = resolve_modules(t.path, {"zz", "a"});
  BOOST_REQUIRE_MESSAGE(r.ok(), (r.ok() ? std::string() : r.error().message()));
  std::vector<std::string> keys;
  for (const auto& m : *r) keys.push_back(m.key);
  BOOST_TEST((keys == std::vector<std::string>{"a", "b_c", "top", "zz"}));
  BOOST_TEST(r->back().data == make_ko(info("top")));  // decompressed
}

BOOST_AUTO_TEST_CASE(dependency_cycles_are_reported) {
  TempDir t;
  put(t.path / "kernel/x.ko", make_ko(info("y")));
  put(t.path / "kernel/y.ko", make_ko(info("x")));
  auto r = resolve_modules(t.path, {"x"});
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(r.error().why.find("cycle") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(initramfs_is_newc_with_init_console_and_modules) {
  TempDir t;
  put(t.path / "init-bin", "#!fake init");
  std::vector<Module> mods = {{"virtio", {}, "AAA"}, {"virtio_blk", {}, "BBBB"}};
  BOOST_REQUIRE(build_initramfs(t.path / "out.cpio", t.path / "init-bin", mods, "hostname n1\n").ok());
  archive* a = archive_read_new();
  archive_read_support_format_cpio(a);
  BOOST_REQUIRE(archive_read_open_filename(a, (t.path / "out.cpio").c_str(), 4096) == ARCHIVE_OK);
  std::map<std::string, std::pair<unsigned, std::string>> seen;
  archive_entry* e;
  int rc;
  // libarchive is the independent reader here: kina-vm writes newc by hand.
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
    std::string data(static_cast<size_t>(archive_entry_size(e)), '\0');
    if (!data.empty()) archive_read_data(a, data.data(), data.size());
    seen[archive_entry_pathname(e)] = {static_cast<unsigned>(archive_entry_mode(e)), data};
    if (std::string(archive_entry_pathname(e)) == "dev/console") {
      BOOST_TEST(archive_entry_rdevmajor(e) == 5u);
      BOOST_TEST(archive_entry_rdevminor(e) == 1u);
    }
  }
  BOOST_TEST(rc == ARCHIVE_EOF);  // the TRAILER!!! entry ends it cleanly
  archive_read_free(a);
  auto raw = read_file(t.path / "out.cpio");
  BOOST_REQUIRE(raw.ok());
  BOOST_TEST(raw->substr(0, 6) == "070701");  // newc magic, what the kernel unpacks
  BOOST_TEST(seen["init"].first == (AE_IFREG | 0755u));
  BOOST_TEST(seen["init"].second == "#!fake init");
  BOOST_TEST(seen["dev/console"].first == (AE_IFCHR | 0600u));
  BOOST_TEST(seen["kina.conf"].second == "hostname n1\n");
  BOOST_TEST(seen["modules/order"].second == "virtio.ko\nvirtio_blk.ko\n");
  BOOST_TEST(seen["modules/virtio_blk.ko"].second == "BBBB");
  BOOST_TEST(seen.count("newroot"));
}
