// Unit tests of kina/inroot.hpp, the one "write inside a root" primitive
// (used by cp's TreeSink, the agent's put and kina-image's layer writer;
// their own tests drive crafted entry streams through it).
#define BOOST_TEST_MODULE inroot
#include <boost/test/unit_test.hpp>

#include "test_support.hpp"

using kina::unit::TempDir;
using kina::unit::both_modes;

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>

#include "kina/inroot.hpp"

using kina::InRoot;
using kina::inroot_components;
namespace fsys = std::filesystem;

namespace {

struct Sandbox {
  std::string base, root, outside;
  Sandbox() {
    char tmpl[] = "/tmp/kina-inroot-test.XXXXXX";
    base = ::mkdtemp(tmpl);
    root = base + "/root";
    outside = base + "/outside";
    ::mkdir(root.c_str(), 0755);
    ::mkdir(outside.c_str(), 0755);
    std::ofstream(outside + "/secret") << "keep";
  }
  ~Sandbox() { fsys::remove_all(base); }
};

std::vector<std::string> comps(const std::string& p) {
  std::vector<std::string> c;
  BOOST_TEST_REQUIRE(inroot_components(p, c, false));
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(names) {
  std::vector<std::string> c;
  BOOST_TEST(inroot_components("./a//b/./c", c, false));
  BOOST_TEST((c == std::vector<std::string>{"a", "b", "c"}));
  BOOST_TEST(!inroot_components("a/../b", c, false));
  BOOST_TEST(!inroot_components("..", c, true));
  BOOST_TEST(!inroot_components("/etc/passwd", c, false));
  BOOST_TEST(inroot_components("/etc/passwd", c, true));  // tar's convention
  BOOST_TEST((c == std::vector<std::string>{"etc", "passwd"}));
  BOOST_TEST(!inroot_components(std::string(300, 'x'), c, false));
}

BOOST_AUTO_TEST_CASE(root_that_is_a_symlink_is_refused) {
  Sandbox s;
  BOOST_TEST_REQUIRE(::symlink(s.outside.c_str(), (s.base + "/link").c_str()) == 0);
  InRoot r(AT_FDCWD, (s.base + "/link").c_str(), InRoot::Symlinks::refuse);
  BOOST_TEST(!r.valid());
  InRoot ok(AT_FDCWD, s.root.c_str(), InRoot::Symlinks::refuse);
  BOOST_TEST(ok.valid());
}

BOOST_AUTO_TEST_CASE(refuse_mode_never_follows_a_symlink_parent) {
  both_modes([] {
    Sandbox s;
    BOOST_TEST_REQUIRE(::symlink(s.outside.c_str(), (s.root + "/abs").c_str()) == 0);
    BOOST_TEST_REQUIRE(::symlink("sub", (s.root + "/rel").c_str()) == 0);
    ::mkdir((s.root + "/sub").c_str(), 0755);
    InRoot r(AT_FDCWD, s.root.c_str(), InRoot::Symlinks::refuse);
    BOOST_TEST_REQUIRE(r.valid());
    for (std::string p : {"abs/x", "rel/x", "sub/../abs/x"}) {
      std::vector<std::string> c;
      if (!inroot_components(p, c, false)) continue;  // ".." is refused before any lookup
      errno = 0;
      BOOST_TEST(r.open_dir(c, c.size() - 1, true) == -1, p);
      BOOST_TEST(errno == ELOOP, p);
    }
    int fd = r.open_dir(comps("sub/new/x"), 2, true);  // created, inside
    BOOST_TEST(fd >= 0);
    if (fd >= 0) ::close(fd);
    BOOST_TEST(fsys::is_directory(s.root + "/sub/new"));
    BOOST_TEST(fsys::is_empty(s.outside) == false);
    BOOST_TEST(!fsys::exists(s.outside + "/x"));
  });
}

BOOST_AUTO_TEST_CASE(in_root_mode_follows_symlinks_as_if_root_were_slash) {
  both_modes([] {
    Sandbox s;
    BOOST_TEST_REQUIRE(::symlink(s.outside.c_str(), (s.root + "/abs").c_str()) == 0);
    BOOST_TEST_REQUIRE(::symlink("../../../..", (s.root + "/up").c_str()) == 0);
    InRoot r(AT_FDCWD, s.root.c_str(), InRoot::Symlinks::in_root);
    int fd = r.open_dir(comps("up/x"), 1, true);  // ".." clamped at the root
    BOOST_TEST_REQUIRE(fd >= 0);
    BOOST_TEST(::mkdirat(fd, "made", 0755) == 0);
    ::close(fd);
    BOOST_TEST(fsys::is_directory(s.root + "/made"));
    fd = r.open_dir(comps("abs/x"), 1, true);  // the host path, made inside the root
    BOOST_TEST_REQUIRE(fd >= 0);
    ::close(fd);
    BOOST_TEST(fsys::is_directory(s.root + s.outside));
    BOOST_TEST(!fsys::exists(s.base + "/made"));
  });
}

BOOST_AUTO_TEST_CASE(hardlinks_stay_inside_and_never_go_through_a_symlink) {
  both_modes([] {
    for (auto mode : {InRoot::Symlinks::refuse, InRoot::Symlinks::in_root}) {
      Sandbox s;
      ::mkdir((s.root + "/d").c_str(), 0755);
      std::ofstream(s.root + "/d/f") << "in";
      BOOST_TEST_REQUIRE(::symlink("d", (s.root + "/l").c_str()) == 0);
      BOOST_TEST_REQUIRE(::symlink(s.outside.c_str(), (s.root + "/o").c_str()) == 0);
      BOOST_TEST_REQUIRE(::symlink((s.outside + "/secret").c_str(), (s.root + "/s").c_str()) == 0);
      InRoot r(AT_FDCWD, s.root.c_str(), mode);
      int rootfd = r.root_fd();
      errno = 0;
      BOOST_TEST(r.link(comps("l/f"), rootfd, "h1") == -1);
      BOOST_TEST(errno == ELOOP);
      BOOST_TEST(r.link(comps("o/secret"), rootfd, "h2") == -1);
      BOOST_TEST(r.link(comps("d"), rootfd, "h3") == -1);
      BOOST_TEST(errno == EISDIR);
      // A link to a symlink links the symlink itself, never its target.
      BOOST_TEST(r.link(comps("s"), rootfd, "h4") == 0);
      BOOST_TEST(fsys::is_symlink(s.root + "/h4"));
      BOOST_TEST(r.link(comps("d/f"), rootfd, "h5") == 0);
      struct stat a {}, b {};
      ::stat((s.outside + "/secret").c_str(), &a);
      BOOST_TEST(a.st_nlink == 1u);
      ::stat((s.root + "/d/f").c_str(), &b);
      BOOST_TEST(b.st_nlink == 2u);
    }
  });
}

BOOST_AUTO_TEST_CASE(symlinks_replace_files_never_directories) {
  Sandbox s;
  std::ofstream(s.root + "/f") << "x";
  ::mkdir((s.root + "/d").c_str(), 0755);
  InRoot r(AT_FDCWD, s.root.c_str(), InRoot::Symlinks::refuse);
  BOOST_TEST(r.symlink(comps("f"), s.outside + "/secret") == 0);
  BOOST_TEST(fsys::is_symlink(s.root + "/f"));
  BOOST_TEST(r.symlink(comps("d"), "x") == -1);
  BOOST_TEST(errno == EISDIR);
  std::ifstream in(s.outside + "/secret");
  BOOST_TEST(std::string(std::istreambuf_iterator<char>(in), {}) == "keep");
}
