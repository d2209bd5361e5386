// Unit tests of the console as the supervisor keeps it
// (tools/kina-vm/console_log.hpp): the cap, the older part, and bytes that
// cannot be written counted and reported instead of stalling the guest.
#define BOOST_TEST_MODULE vm_console_log
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <boost/test/unit_test.hpp>

#include "console_log.hpp"
#include "kina/fs.hpp"
#include "../test_support.hpp"

using namespace kina;
using namespace kina::vm;

namespace {

// A directory of its own per test (test_support.hpp), and a file of it read back.
struct Dir : unit::TempDir {
  std::string read(const char* name) const {
    auto t = read_file(path / name, 1u << 20);
    return t ? *t : std::string("<absent>");
  }
};

std::string pattern(size_t n, size_t from = 0) {
  std::string s;
  for (size_t i = from; i < from + n; ++i) s += static_cast<char>('a' + i % 26);
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(bytes_under_the_cap_go_to_console_log_as_they_come) {
  Dir d;
  ConsoleLog c(d.path.string(), 1000);
  c.write("boot\r\n");
  c.write(std::string("\0\x1b[2J", 5));
  c.write("");
  BOOST_TEST(d.read(file::console) == std::string("boot\r\n\0\x1b[2J", 11));
  BOOST_TEST(!fsys::exists(d.path / file::old_console));
  BOOST_TEST(c.lost() == 0u);
  struct stat sb {};
  BOOST_REQUIRE(::stat((d.path / file::console).c_str(), &sb) == 0);
  BOOST_TEST((sb.st_mode & 07777) == 0644u);
}

BOOST_AUTO_TEST_CASE(at_the_cap_console_log_becomes_the_older_part_and_no_file_passes_the_cap) {
  Dir d;
  ConsoleLog c(d.path.string(), 100);
  std::string all = pattern(1234);
  for (size_t i = 0; i < all.size(); i += 37) c.write(std::string_view(all).substr(i, 37));
  std::string old = d.read(file::old_console), cur = d.read(file::console);
  BOOST_TEST(old.size() == 100u);
  BOOST_TEST(cur.size() == 34u);  // 1234 = 12 * 100 + 34
  // Together they are the newest bytes, in order.
  BOOST_TEST(old + cur == all.substr(all.size() - 134));
  BOOST_TEST(c.lost() == 0u);
}

BOOST_AUTO_TEST_CASE(an_existing_console_log_counts_towards_the_cap) {
  Dir d;
  BOOST_REQUIRE(write_file_atomic(d.path / file::console, pattern(90), 0644).ok());
  ConsoleLog c(d.path.string(), 100);
  c.write(pattern(20, 90));
  BOOST_TEST(d.read(file::old_console) == pattern(100));
  BOOST_TEST(d.read(file::console) == pattern(10, 100));
}

BOOST_AUTO_TEST_CASE(what_cannot_be_written_is_counted_and_said_once_writing_works_again) {
  Dir d;
  ConsoleLog c(d.path.string(), 1u << 20);
  c.write("before\n");
  c.close();
  // console.log replaced by a symlink: never written through.
  fsys::path target = d.path / "elsewhere";
  BOOST_REQUIRE(write_file_atomic(target, "untouched", 0644).ok());
  fsys::remove(d.path / file::console);
  fsys::create_symlink(target, d.path / file::console);
  c.write("lost one\n");
  c.write("lost two\n");
  BOOST_TEST(c.lost() == 18u);
  BOOST_TEST(d.read("elsewhere") == "untouched");
  fsys::remove(d.path / file::console);
  c.write("after\n");
  BOOST_TEST(c.lost() == 0u);
  std::string cur = d.read(file::console);
  BOOST_TEST(cur.find("[kina-vm: 18 bytes of console output lost: ") != std::string::npos, cur);
  BOOST_TEST(cur.size() > 6u);
  BOOST_TEST(cur.substr(cur.size() - 6) == "after\n");
}

BOOST_AUTO_TEST_CASE(a_write_cut_short_keeps_what_went_in_and_counts_the_rest) {
  // A file size limit stands in for a full disk: the write goes in up to it.
  Dir d;
  ::signal(SIGXFSZ, SIG_IGN);
  rlimit before {};
  BOOST_REQUIRE(::getrlimit(RLIMIT_FSIZE, &before) == 0);
  rlimit small = before;
  small.rlim_cur = 4096;
  BOOST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  ConsoleLog c(d.path.string(), 1u << 20);
  c.write(pattern(5000));
  c.write(pattern(10));  // while the limit holds: counted, not written
  uint64_t lost = c.lost();
  BOOST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &before) == 0);
  ::signal(SIGXFSZ, SIG_DFL);
  BOOST_TEST(lost == 5000u - 4096u + 10u);
  c.write("resumed\n");
  std::string cur = d.read(file::console);
  BOOST_TEST(cur.substr(0, 4096) == pattern(4096));
  BOOST_TEST(cur.find(fmt::format("[kina-vm: {} bytes of console output lost: File too large]", lost)) == 4096u + 1u, cur.substr(4096));
  BOOST_TEST(cur.substr(cur.size() - 8) == "resumed\n");
}

BOOST_AUTO_TEST_CASE(a_console_log_that_is_not_a_regular_file_is_never_opened_for_writing) {
  Dir d;
  BOOST_REQUIRE(::mkfifo((d.path / file::console).c_str(), 0600) == 0);
  ConsoleLog c(d.path.string(), 1000);
  c.write("x");  // a FIFO with no reader: fails at once, does not block
  BOOST_TEST(c.lost() == 1u);
  fsys::remove(d.path / file::console);
  fsys::create_directory(d.path / file::console);
  c.write("y");
  BOOST_TEST(c.lost() == 2u);
}
