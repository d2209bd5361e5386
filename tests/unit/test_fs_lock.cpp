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

// Files that belong together: the second cannot be staged (its directory is
// gone), so the first keeps its old content and no temporary is left.
BOOST_AUTO_TEST_CASE(files_written_together_or_not_at_all) {
  TempDir d;
  auto a = d.path / "a";
  BOOST_REQUIRE(write_file_atomic(a, "old", 0600).ok());
  auto st = write_files_atomic({{a, "new", 0600}, {d.path / "gone" / "b", "b", 0644}});
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST(code(st.error().exit) == 73);
  BOOST_TEST(read_file(a).value() == "old");
  int n = 0;
  for (auto& e : fsys::directory_iterator(d.path)) (void)e, ++n;
  BOOST_TEST(n == 1);
  BOOST_REQUIRE(write_files_atomic({{a, "new", 0600}, {d.path / "b", "b", 0644}}).ok());
  BOOST_TEST(read_file(a).value() == "new");
  BOOST_TEST(read_file(d.path / "b").value() == "b");
  struct stat sb {};
  BOOST_REQUIRE(::stat((d.path / "b").c_str(), &sb) == 0);
  BOOST_TEST((sb.st_mode & 07777) == 0644u);
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

// Issue 8, item 4: a symlink or hard link planted at a lock path is refused and
// what it points at is never truncated or written.
BOOST_AUTO_TEST_CASE(lock_never_follows_a_symlink_nor_truncates_another_file) {
  TempDir d;
  auto victim = d.path / "victim";
  BOOST_REQUIRE(write_file_atomic(victim, "precious", 0600).ok());
  auto link = d.path / "log.lock";
  BOOST_REQUIRE(::symlink(victim.c_str(), link.c_str()) == 0);
  auto l = FileLock::acquire(link, 100ms, "t");
  BOOST_REQUIRE(!l.ok());
  BOOST_TEST(code(l.error().exit) == 73);
  BOOST_TEST(l.error().why.find("symbolic link") != std::string::npos);
  BOOST_TEST(*read_file(victim) == "precious");
  // A dangling symlink is not followed to create its target either.
  auto dangling = d.path / "dangling.lock";
  BOOST_REQUIRE(::symlink((d.path / "made").c_str(), dangling.c_str()) == 0);
  BOOST_TEST(!FileLock::acquire(dangling, 100ms).ok());
  BOOST_TEST(!fsys::exists(d.path / "made"));
  // A hard link to another file.
  auto hard = d.path / "hard.lock";
  BOOST_REQUIRE(::link(victim.c_str(), hard.c_str()) == 0);
  auto h = FileLock::acquire(hard, 100ms, "t");
  BOOST_REQUIRE(!h.ok());
  BOOST_TEST(code(h.error().exit) == 73);
  BOOST_TEST(*read_file(victim) == "precious");
  // A FIFO or device: refused without blocking.
  auto fifo = d.path / "fifo.lock";
  BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  BOOST_TEST(!FileLock::acquire(fifo, 100ms).ok());
  BOOST_TEST(!FileLock::acquire("/dev/null", 100ms).ok());
}

BOOST_AUTO_TEST_CASE(lock_files_outside_kina_home_go_under_its_locks_dir) {
  TempDir d;
  auto home = d.path / "home";
  ::setenv("KINA_HOME", home.c_str(), 1);
  auto inside = lock_path_for(home / "audit" / "log.jsonl");
  BOOST_REQUIRE(inside.ok());
  BOOST_TEST(*inside == home / "audit" / "log.jsonl.lock");
  auto outside = lock_path_for("/dev/null");
  BOOST_REQUIRE(outside.ok());
  BOOST_TEST(outside->parent_path() == home / "locks");
  BOOST_TEST(*outside != *lock_path_for("/dev/zero"));
  BOOST_TEST(*outside == *lock_path_for("/dev/../dev/null"));  // one lock per file, however it is spelled
  // A sibling whose name starts like KINA_HOME is outside it.
  auto sibling = lock_path_for(d.path / "home2" / "log");
  BOOST_REQUIRE(sibling.ok());
  BOOST_TEST(sibling->parent_path() == home / "locks");
  auto l = FileLock::acquire_for("/dev/null", 1s, "t");
  BOOST_REQUIRE(l.ok());
  BOOST_TEST(!fsys::exists("/dev/null.lock"));
  ::unsetenv("KINA_HOME");
}

BOOST_AUTO_TEST_CASE(shared_locks_coexist_and_exclude_an_exclusive_one) {
  TempDir d;
  auto path = d.path / "lock";
  auto s1 = FileLock::acquire(path, 1s, "reader", LockMode::shared);
  BOOST_REQUIRE(s1.ok());
  // flock locks belong to the open file description, so a second open in this
  // process is a second holder, as another process would be.
  auto s2 = FileLock::acquire(path, 1s, "reader", LockMode::shared);
  BOOST_REQUIRE(s2.ok());
  auto x = FileLock::acquire(path, 100ms, "writer");
  BOOST_REQUIRE(!x.ok());
  BOOST_TEST(code(x.error().exit) == 75);
  s1->release();
  s2->release();
  auto x2 = FileLock::acquire(path, 1s, "writer");
  BOOST_REQUIRE(x2.ok());
  auto s3 = FileLock::acquire(path, 100ms, "reader", LockMode::shared);
  BOOST_TEST(!s3.ok());
}

BOOST_AUTO_TEST_CASE(one_lock_per_file_through_a_symlinked_home) {
  TempDir d;
  fsys::create_directories(d.path / "real" / "audit");
  fsys::create_directory_symlink(d.path / "real", d.path / "home");
  ::setenv("KINA_HOME", (d.path / "home").c_str(), 1);
  auto a = lock_path_for(d.path / "home" / "audit" / "log.jsonl");
  auto b = lock_path_for(d.path / "real" / "audit" / "log.jsonl");
  BOOST_REQUIRE(a.ok() && b.ok());
  BOOST_TEST(*a == *b);
  BOOST_TEST(*a == d.path / "real" / "audit" / "log.jsonl.lock");
  ::unsetenv("KINA_HOME");
}

// Issue 8, item 2, for every writer: an atomic write never replaces a device
// or FIFO with a regular file, and leaves no temporary behind.
BOOST_AUTO_TEST_CASE(atomic_write_never_replaces_a_device_or_fifo) {
  TempDir d;
  auto fifo = d.path / "fifo";
  BOOST_REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  auto st = write_file_atomic(fifo, "x");
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST(code(st.error().exit) == 73);
  struct stat sb {};
  BOOST_REQUIRE(::lstat(fifo.c_str(), &sb) == 0);
  BOOST_TEST(S_ISFIFO(sb.st_mode));
  int n = 0;
  for (auto& e : fsys::directory_iterator(d.path)) (void)e, ++n;
  BOOST_TEST(n == 1);
  // Reading one is refused at once instead of blocking (nothing writes it).
  auto r = read_file(fifo);
  BOOST_REQUIRE(!r.ok());
  BOOST_TEST(code(r.error().exit) == 65);
  BOOST_TEST(r.error().why.find("FIFO") != std::string::npos);
  BOOST_TEST(!read_file("/dev/zero", 16).ok());
}

BOOST_AUTO_TEST_CASE(a_childs_failure_is_its_first_complaint) {
  using kina::detail::first_complaint;
  BOOST_TEST(first_complaint("tar: tree/f1: Cannot write: No space left on device\n"
                             "tar: tree/f2: Cannot write: No space left on device\n"
                             "tar: Exiting with failure status due to previous errors\n") ==
             "tar: tree/f1: Cannot write: No space left on device");
  BOOST_TEST(first_complaint("tar: Error is not recoverable: exiting now\n") == "tar: Error is not recoverable: exiting now");
  BOOST_TEST(first_complaint("\nkina-cp: /nope: no such directory\r\n") == "kina-cp: /nope: no such directory");
  BOOST_TEST(first_complaint("a\tb\x1b[0m") == "a\\x09b\\x1b[0m");
  BOOST_TEST(first_complaint("") == "");
}

BOOST_AUTO_TEST_CASE(a_full_disk_is_named_from_the_line_that_says_so) {
  TempDir d;
  // dpkg-deb's tar: the short write first, the cause on a later line
  BOOST_TEST(kina::full_disk_why("tar: ./a.ko: Wrote only 4096 of 10240 bytes\n"
                                 "tar: ./b.ko: Cannot write: No space left on device\r\n"
                                 "tar: Exiting with failure status due to previous errors\n",
                                 d.path) == "tar: ./b.ko: Cannot write: No space left on device");
  // with room on DIR's file system, nothing is added to what the child said
  BOOST_TEST(kina::full_disk_why("tar: ./a.ko: Wrote only 4096 of 10240 bytes\n", d.path) ==
             "tar: ./a.ko: Wrote only 4096 of 10240 bytes");
}

BOOST_AUTO_TEST_CASE(a_scoped_temp_dir_is_named_by_pid_and_goes_with_its_scope) {
  TempDir d;
  auto t = kina::ScopedTempDir::make(d.path, ".x.");
  BOOST_TEST_REQUIRE(static_cast<bool>(t));
  fsys::path p = t->path();
  BOOST_TEST(p.filename().string().rfind(fmt::format(".x.{}.", ::getpid()), 0) == 0);
  BOOST_TEST(fsys::is_directory(p));
  {
    kina::ScopedTempDir moved(std::move(*t));
    BOOST_TEST(t->path().empty());  // the moved-from one removes nothing
    BOOST_TEST(fsys::is_directory(p));
  }
  BOOST_TEST(!fsys::exists(p));
}
