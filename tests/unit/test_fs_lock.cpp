#define BOOST_TEST_MODULE fs_lock
#include <boost/test/unit_test.hpp>

#include "test_support.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/lock.hpp"

using namespace kina;
using namespace std::chrono_literals;
using kina::unit::TempDir;
using kina::unit::both_modes;

BOOST_AUTO_TEST_CASE(atomic_write_replaces_and_sets_mode) {
  TempDir d;
  auto f = d.path / "state.json";
  BOOST_REQUIRE(write_file_atomic(f, "one", 0600).ok());
  BOOST_REQUIRE(write_file_atomic(f, "two", 0640).ok());
  auto r = read_file(f);
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(*r == "two");
  struct stat sb {};
  ::stat(f.c_str(), &sb);
  BOOST_TEST((sb.st_mode & 0777) == 0640u);
  // No temporary files are left behind.
  int n = 0;
  for (auto& e : fsys::directory_iterator(d.path)) (void)e, ++n;
  BOOST_TEST(n == 1);
}

BOOST_AUTO_TEST_CASE(atomic_write_into_missing_dir_fails_cleanly) {
  TempDir d;
  auto st = write_file_atomic(d.path / "no" / "such" / "f", "x");
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST(code(st.error().exit) == 73);
}

BOOST_AUTO_TEST_CASE(missing_file_is_no_input) {
  auto r = read_file("/nonexistent/kina/file");
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 66);
}

BOOST_AUTO_TEST_CASE(lock_times_out_and_names_the_holder) {
  TempDir d;
  auto path = d.path / "lock";
  int ready[2];
  BOOST_REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  if (child == 0) {
    auto l = FileLock::acquire(path, 1s, "holder-test");
    char c = l.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &c, 1);
    ::sleep(30);
    _exit(0);
  }
  char c = 0;
  BOOST_REQUIRE(::read(ready[0], &c, 1) == 1);
  BOOST_REQUIRE(c == 'y');
  auto t0 = std::chrono::steady_clock::now();
  auto l = FileLock::acquire(path, 300ms);
  auto took = std::chrono::steady_clock::now() - t0;
  BOOST_REQUIRE(!l.ok());
  BOOST_TEST(code(l.error().exit) == 75);
  BOOST_TEST(l.error().why.find("pid=" + std::to_string(child)) != std::string::npos);
  BOOST_TEST(l.error().why.find("holder-test") != std::string::npos);
  BOOST_TEST(took >= 300ms);
  // The holder dies: the lock is free at once (flock dies with its holder).
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  auto l2 = FileLock::acquire(path, 2s);
  BOOST_TEST(l2.ok());
}

BOOST_AUTO_TEST_CASE(kina_home_is_created_0700) {
  TempDir d;
  auto home = d.path / "h" / "kina";
  ::setenv("KINA_HOME", home.c_str(), 1);
  auto r = kina_home();
  BOOST_REQUIRE(r.ok());
  BOOST_TEST(*r == home);
  struct stat sb {};
  BOOST_REQUIRE(::stat(home.c_str(), &sb) == 0);
  BOOST_TEST((sb.st_mode & 0777) == 0700u);
  ::chmod(home.c_str(), 0755);
  BOOST_REQUIRE(kina_home().ok());
  ::stat(home.c_str(), &sb);
  BOOST_TEST((sb.st_mode & 0777) == 0700u);
  ::unsetenv("KINA_HOME");
  ::setenv("HOME", d.path.c_str(), 1);
  auto def = kina_home(false);
  BOOST_REQUIRE(def.ok());
  BOOST_TEST(*def == d.path / ".kina");
}
