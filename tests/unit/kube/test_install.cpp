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

}  // namespace

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
