#define BOOST_TEST_MODULE kube_install
#include <boost/test/unit_test.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "../test_support.hpp"
#include "install.hpp"
#include "kina/fs.hpp"
#include "kina/lock.hpp"

using namespace kina;
using namespace kina::kube;
using kina::unit::TempDir;

namespace {

std::string slurp(const fsys::path& p) {
  auto t = read_file(p, 1 << 20);
  BOOST_REQUIRE_MESSAGE(t.ok(), p.string());
  return *t;
}

void put(const fsys::path& p, const std::string& s) {
  fsys::create_directories(p.parent_path());
  BOOST_REQUIRE(write_file_atomic(p, s, 0644).ok());
}

mode_t mode_of(const fsys::path& p) {
  struct stat st {};
  BOOST_REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Names in `dir` that start with '.' (staging directories, temporaries).
std::vector<std::string> hidden(const fsys::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fsys::directory_iterator(dir))
    if (e.path().filename().string().front() == '.') out.push_back(e.path().filename().string());
  return out;
}

// install_files locks DIR through $KINA_HOME/locks: a home of the test's own.
struct Home {
  TempDir d;
  Home() { ::setenv("KINA_HOME", (d.path / "home").c_str(), 1); }
  ~Home() { ::unsetenv("KINA_HOME"); }
};

}  // namespace

BOOST_TEST_GLOBAL_FIXTURE(Home);

BOOST_AUTO_TEST_CASE(missing_dir_gets_every_file_with_its_mode) {
  TempDir t;
  fsys::path dir = t.path / "out" / "pki";
  BOOST_REQUIRE(install_files(dir, {{"ca.crt", "CERT", 0644}, {"etcd/ca.key", "KEY", 0600}}).ok());
  BOOST_TEST(slurp(dir / "ca.crt") == "CERT");
  BOOST_TEST(slurp(dir / "etcd" / "ca.key") == "KEY");
  BOOST_TEST(mode_of(dir / "ca.crt") == 0644u);
  BOOST_TEST(mode_of(dir / "etcd" / "ca.key") == 0600u);
  BOOST_TEST(hidden(t.path / "out").empty());
}

BOOST_AUTO_TEST_CASE(existing_dir_replaces_its_files_and_keeps_the_others) {
  TempDir t;
  put(t.path / "ca.crt", "OLD");
  put(t.path / "other", "MINE");
  BOOST_REQUIRE(install_files(t.path, {{"ca.crt", "NEW", 0644}, {"etcd/ca.key", "KEY", 0600}}).ok());
  BOOST_TEST(slurp(t.path / "ca.crt") == "NEW");
  BOOST_TEST(slurp(t.path / "etcd" / "ca.key") == "KEY");
  BOOST_TEST(slurp(t.path / "other") == "MINE");
  BOOST_TEST(hidden(t.path).empty());
}

BOOST_AUTO_TEST_CASE(a_target_that_is_not_a_regular_file_stops_everything) {
  TempDir t;
  fsys::create_symlink("/etc/hostname", t.path / "ca.key");
  auto st = install_files(t.path, {{"ca.crt", "NEW", 0644}, {"ca.key", "KEY", 0600}});
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST((st.error().exit == Exit::cant_create));
  BOOST_TEST(st.error().message().find((t.path / "ca.key").string()) != std::string::npos);
  BOOST_TEST(!fsys::exists(t.path / "ca.crt"));  // nothing written, not even the good file
  BOOST_TEST(fsys::is_symlink(t.path / "ca.key"));
  BOOST_TEST(hidden(t.path).empty());
}

BOOST_AUTO_TEST_CASE(check_targets_refuses_a_parent_that_is_not_a_directory) {
  TempDir t;
  put(t.path / "etcd", "a file");
  auto st = check_targets(t.path, {{"etcd/ca.key", "KEY", 0600}});
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST(st.error().message().find("is not a directory") != std::string::npos);
  ::mkfifo((t.path / "fifo").c_str(), 0600);
  BOOST_TEST(!check_targets(t.path, {{"fifo", "x", 0600}}).ok());
  fsys::create_directory(t.path / "d");
  BOOST_TEST(!check_targets(t.path, {{"d", "x", 0600}}).ok());
  BOOST_TEST(check_targets(t.path, {{"new", "x", 0600}, {"sub/new", "x", 0600}}).ok());
}

// A failure after some files were moved in puts every one of them back: the
// replaced file has its old contents, new files and new directories are gone.
BOOST_AUTO_TEST_CASE(a_failure_midway_rolls_back_every_step) {
  TempDir t;
  fsys::path dir = t.path / "dir", tmp = t.path / "staging";
  put(dir / "ca.crt", "OLD");
  put(tmp / "ca.crt", "NEW");
  put(tmp / "etcd" / "ca.key", "KEY");
  // "missing" is not staged: moving it in fails after the first two moves.
  auto st = move_in(tmp, dir, {{"ca.crt", "", 0644}, {"etcd/ca.key", "", 0600}, {"missing", "", 0600}});
  BOOST_REQUIRE(!st.ok());
  BOOST_TEST((st.error().exit == Exit::cant_create));
  BOOST_TEST(slurp(dir / "ca.crt") == "OLD");
  BOOST_TEST(!fsys::exists(dir / "etcd"));
  BOOST_TEST(!fsys::exists(dir / "missing"));
  BOOST_TEST(slurp(tmp / "ca.crt") == "NEW");  // the new file went back to the staging directory
  // Every step succeeding moves everything.
  put(tmp / "missing", "M");
  BOOST_REQUIRE(fsys::exists(tmp / "etcd" / "ca.key") == false);  // was moved, then removed by the rollback
  put(tmp / "etcd" / "ca.key", "KEY");
  BOOST_REQUIRE(move_in(tmp, dir, {{"ca.crt", "", 0644}, {"etcd/ca.key", "", 0600}, {"missing", "", 0600}}).ok());
  BOOST_TEST(slurp(dir / "ca.crt") == "NEW");
  BOOST_TEST(slurp(tmp / "ca.crt") == "OLD");  // swapped out, removed with the staging directory
  BOOST_TEST(slurp(dir / "etcd" / "ca.key") == "KEY");
}

BOOST_AUTO_TEST_CASE(roll_back_trades_exchanged_files_back_and_removes_new_ones) {
  TempDir t;
  put(t.path / "target", "NEW");  // after an exchange: the new file in place, the old one staged
  put(t.path / "staged", "OLD");
  fsys::create_directory(t.path / "made");
  put(t.path / "made" / "new", "N");
  roll_back({{t.path / "staged", t.path / "target", true}, {"", t.path / "made" / "new", false}}, {t.path / "made"});
  BOOST_TEST(slurp(t.path / "target") == "OLD");
  BOOST_TEST(slurp(t.path / "staged") == "NEW");
  BOOST_TEST(!fsys::exists(t.path / "made"));
}

BOOST_AUTO_TEST_CASE(staging_directories_of_dead_processes_are_swept) {
  TempDir t;
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  fsys::create_directory(t.path / fmt::format(".kina-kube.tmp.{}.AbC123", dead));
  fsys::create_directory(t.path / fmt::format(".kina-kube.tmp.{}.AbC123", ::getpid()));  // alive: ours
  fsys::create_directory(t.path / fmt::format(".kina-kube.tmp.{}.short", dead));          // not the name shape
  put(t.path / fmt::format(".kina-kube.tmp.{}.XyZ789", dead), "a file of a dead process: swept too");
  fsys::create_symlink("/", t.path / fmt::format(".kina-kube.tmp.{}.Link00", dead));  // never followed nor removed
  sweep_dead_temps(t.path, ".kina-kube.tmp.");
  BOOST_TEST(!fsys::exists(t.path / fmt::format(".kina-kube.tmp.{}.AbC123", dead)));
  BOOST_TEST(fsys::exists(t.path / fmt::format(".kina-kube.tmp.{}.AbC123", ::getpid())));
  BOOST_TEST(fsys::exists(t.path / fmt::format(".kina-kube.tmp.{}.short", dead)));
  BOOST_TEST(!fsys::exists(t.path / fmt::format(".kina-kube.tmp.{}.XyZ789", dead)));
  BOOST_TEST(fsys::is_symlink(t.path / fmt::format(".kina-kube.tmp.{}.Link00", dead)));
}

// A kill -9 while files are moved into an existing DIR, after any number of
// moves: the next run into DIR puts back every file as it was (the journal of
// the staged files' inodes tells which were moved and which file in the
// staging directory is an old one swapped out), removes what was new and the
// directories made for it, then does its own work.
BOOST_AUTO_TEST_CASE(the_next_run_puts_back_what_a_killed_move_had_moved) {
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  const std::vector<Staged> files{{"ca.crt", "", 0644}, {"etcd/ca.key", "", 0600}, {"ca.key", "", 0600}, {"sa.pub", "", 0644}};
  for (size_t moved = 0; moved <= files.size(); ++moved) {
    BOOST_TEST_CONTEXT("killed after " << moved << " moves") {
      TempDir t;
      put(t.path / "ca.crt", "OLD-CRT");
      put(t.path / "ca.key", "OLD-KEY");
      fsys::path tmp = t.path / fmt::format(".kina-kube.tmp.{}.AbC123", dead);
      for (const auto& f : files) put(tmp / f.rel, "NEW " + f.rel.string());
      BOOST_REQUIRE(write_moves_journal(tmp, t.path, files).ok());
      std::vector<Staged> done(files.begin(), files.begin() + static_cast<std::ptrdiff_t>(moved));
      BOOST_REQUIRE(move_in(tmp, t.path, done).ok());
      // The next run (another file into the same DIR).
      BOOST_REQUIRE(install_files(t.path, {{"other.crt", "OTHER", 0644}}).ok());
      BOOST_TEST(slurp(t.path / "ca.crt") == "OLD-CRT");
      BOOST_TEST(slurp(t.path / "ca.key") == "OLD-KEY");
      BOOST_TEST(!fsys::exists(t.path / "etcd"));
      BOOST_TEST(!fsys::exists(t.path / "sa.pub"));
      BOOST_TEST(slurp(t.path / "other.crt") == "OTHER");
      BOOST_TEST(hidden(t.path).empty());
    }
  }
}

// What is no longer the killed run's file is left alone: a target replaced
// since (another inode), or a journal that is torn or not kina's.
BOOST_AUTO_TEST_CASE(recovery_touches_only_the_killed_runs_own_files) {
  TempDir t;
  fsys::path tmp = t.path / "staging";
  put(t.path / "ca.crt", "OLD");
  put(tmp / "ca.crt", "NEW");
  put(tmp / "sa.pub", "NEW-PUB");
  const std::vector<Staged> files{{"ca.crt", "", 0644}, {"sa.pub", "", 0644}};
  BOOST_REQUIRE(write_moves_journal(tmp, t.path, files).ok());
  BOOST_REQUIRE(move_in(tmp, t.path, files).ok());
  put(t.path / "sa.pub", "SOMEONE ELSE'S");  // a new inode since the move
  recover_moves(t.path, tmp);
  BOOST_TEST(slurp(t.path / "ca.crt") == "OLD");
  BOOST_TEST(slurp(t.path / "sa.pub") == "SOMEONE ELSE'S");
  // A torn journal (no final newline) means the moves never started: nothing is touched.
  TempDir u;
  fsys::path utmp = u.path / "staging";
  put(u.path / "ca.crt", "OLD");
  put(utmp / "ca.crt", "NEW");
  BOOST_REQUIRE(write_moves_journal(utmp, u.path, {{"ca.crt", "", 0644}}).ok());
  BOOST_REQUIRE(move_in(utmp, u.path, {{"ca.crt", "", 0644}}).ok());
  std::string j = slurp(utmp / std::string(kMovesJournal));
  put(utmp / std::string(kMovesJournal), j.substr(0, j.size() - 1));
  recover_moves(u.path, utmp);
  BOOST_TEST(slurp(u.path / "ca.crt") == "NEW");
  put(utmp / std::string(kMovesJournal), "not a journal\n" + j.substr(j.find('\n') + 1));
  recover_moves(u.path, utmp);
  BOOST_TEST(slurp(u.path / "ca.crt") == "NEW");
}

BOOST_AUTO_TEST_CASE(a_journal_is_acted_on_only_when_every_line_is_well_formed) {
  auto j = parse_moves_journal("kina-kube moves 1\nd\tetcd\nf\t2049:12\tetcd/ca.key\nf\t2049:13\tca.crt\n");
  BOOST_REQUIRE(j.has_value());
  BOOST_TEST(j->dirs.size() == 1u);
  BOOST_REQUIRE(j->files.size() == 2u);
  BOOST_TEST(j->files[0].ino == 12u);
  BOOST_TEST(j->files[1].rel.string() == "ca.crt");
  BOOST_TEST(format_moves_journal(*j) == "kina-kube moves 1\nd\tetcd\nf\t2049:12\tetcd/ca.key\nf\t2049:13\tca.crt\n");
  for (const char* bad : {"", "kina-kube moves 1\nf\t1:2\tca.crt",  // torn
                          "kina-kube moves 2\nf\t1:2\tca.crt\n", "kina-kube moves 1\nf\t1:2\t../x\n",
                          "kina-kube moves 1\nf\t1:2\t/etc/x\n", "kina-kube moves 1\nd\t./etcd\n",
                          "kina-kube moves 1\nf\t1:x\tca.crt\n", "kina-kube moves 1\nf\t12\tca.crt\n",
                          "kina-kube moves 1\nq\tca.crt\n"})
    BOOST_TEST(!parse_moves_journal(bad).has_value(), "accepted: " << bad);
}

// Two installs into one DIR never interleave: while another process holds
// DIR's lock, an install waits and DIR stays as it was; once the lock is free
// it completes. The lock is found by any spelling of DIR (a symlink to it).
BOOST_AUTO_TEST_CASE(an_install_waits_for_the_lock_on_its_directory) {
  TempDir t;
  put(t.path / "pki" / "ca.crt", "OLD");
  fsys::create_symlink(t.path / "pki", t.path / "link");
  auto held = FileLock::acquire_for(t.path / "link", std::chrono::seconds(1), "test");
  BOOST_REQUIRE(held.ok());
  int ready[2];
  BOOST_REQUIRE(::pipe(ready) == 0);
  pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {
    ::close(ready[0]);
    (void)!::write(ready[1], "x", 1);
    ::_exit(install_files(t.path / "pki", {{"ca.crt", "NEW", 0644}, {"ca.key", "KEY", 0600}}).ok() ? 0 : 1);
  }
  ::close(ready[1]);
  char c;
  BOOST_REQUIRE(::read(ready[0], &c, 1) == 1);
  ::close(ready[0]);
  // (The one fixed wait here: what is checked is that nothing happens.)
  ::usleep(300 * 1000);
  int status = 0;
  BOOST_TEST(::waitpid(child, &status, WNOHANG) == 0);  // still waiting for the lock
  BOOST_TEST(slurp(t.path / "pki" / "ca.crt") == "OLD");
  BOOST_TEST(!fsys::exists(t.path / "pki" / "ca.key"));
  BOOST_TEST(hidden(t.path / "pki").empty());
  held->release();
  BOOST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_TEST((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  BOOST_TEST(slurp(t.path / "pki" / "ca.crt") == "NEW");
  BOOST_TEST(slurp(t.path / "pki" / "ca.key") == "KEY");
}
