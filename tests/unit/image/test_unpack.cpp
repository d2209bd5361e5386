#define BOOST_TEST_MODULE image_unpack
#include <boost/test/unit_test.hpp>

#include "../test_support.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "tar_builder.hpp"
#include "unpack.hpp"

using namespace kina;
using namespace kina::image;
using kina::unit::TempDir;
using kina::unit::both_modes;

namespace {

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fsys::directory_iterator(dir)) out.push_back(e.path().filename().string());
  return out;
}

}  // namespace

// Review finding: unpack checked that --rootfs did not exist, unpacked, then
// rename()d over it; rename replaces an empty directory, so a directory made at
// that path meanwhile (by anyone able to write the parent) was silently
// replaced. Now the rename itself refuses (RENAME_NOREPLACE): 73, nothing left.
BOOST_AUTO_TEST_CASE(regress_rootfs_created_while_unpacking_is_not_replaced) {
  TempDir t;
  auto store = Store::open(t.path.string() + "/store");
  BOOST_TEST_REQUIRE(store.ok());
  std::string tar = test::Tar().file("hello", "world").bytes();
  Digest d = Digest::of_data(tar);
  // The layer blob is a FIFO: the unpack blocks reading it until the helper
  // thread has created the output directory, so the race is deterministic.
  BOOST_TEST_REQUIRE(::mkfifo(store->blob_path(d).c_str(), 0600) == 0);
  ImageInfo img;
  img.layers.push_back({Descriptor{"application/vnd.oci.image.layer.v1.tar", d, static_cast<int64_t>(tar.size()), {}}, d});
  std::string parent = t.path.string() + "/out-parent", out = parent + "/rootfs";
  BOOST_TEST_REQUIRE(::mkdir(parent.c_str(), 0700) == 0);
  std::thread racer([&] {
    for (int i = 0; i < 10000; ++i) {  // at most 10 s
      bool tmp_seen = false;
      for (const auto& n : names_in(parent)) tmp_seen |= n.rfind(".rootfs.kina-tmp.", 0) == 0;
      if (tmp_seen) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ::mkdir(out.c_str(), 0755);
    int fd = ::open(store->blob_path(d).c_str(), O_WRONLY);
    if (fd >= 0) {
      (void)write_all(fd, tar, "fifo");
      ::close(fd);
    }
  });
  auto r = unpack_rootfs(*store, img, out, Limits{});
  racer.join();
  BOOST_TEST_REQUIRE(!r.ok());
  BOOST_TEST((r.error().exit == Exit::cant_create));
  BOOST_TEST(r.error().why == "it was created while unpacking");
  BOOST_TEST(fsys::is_directory(out));
  BOOST_TEST(fsys::is_empty(out));                            // theirs, untouched
  BOOST_TEST(names_in(parent) == std::vector<std::string>{"rootfs"});  // no temporary left
}

// Review finding: --disk built its image at the fixed name ".NAME.kina-tmp",
// unlinking whatever was there first: a concurrent unpack to the same disk
// lost its work in progress, and mke2fs opened by name a path that another
// user could plant a symlink at between the unlink and the open. Now the
// temporary is created O_EXCL with a random suffix and the rename never
// replaces an existing disk.
BOOST_AUTO_TEST_CASE(regress_disk_temporary_is_private) {
  TempDir t;
  std::string root = t.path.string() + "/root";
  BOOST_TEST_REQUIRE(::mkdir(root.c_str(), 0755) == 0);
  std::ofstream(root + "/f") << "data";
  std::string other = t.path.string() + "/.d.img.kina-tmp";
  std::ofstream(other) << "another unpack's work in progress";
  TreeStats st;
  st.files = 1;
  st.bytes = 4;
  auto s = make_disk(root, t.path.string() + "/d.img", 8u << 20, st);
  BOOST_TEST_REQUIRE(s.ok(), (s ? "" : s.error().message()));
  std::ifstream in(other);
  BOOST_TEST(std::string(std::istreambuf_iterator<char>(in), {}) == "another unpack's work in progress");
  struct stat sb {};
  BOOST_TEST_REQUIRE(::stat((t.path.string() + "/d.img").c_str(), &sb) == 0);
  BOOST_TEST((sb.st_mode & 0777) == 0600u);
  auto names = names_in(t.path);
  std::sort(names.begin(), names.end());
  BOOST_TEST((names == std::vector<std::string>{".d.img.kina-tmp", "d.img", "root"}));
}

// A layer may nest 2048 directories (PATH_MAX); counting and removing such a
// tree must not hold a descriptor per level.
BOOST_AUTO_TEST_CASE(deep_trees_are_counted_and_removed_with_few_descriptors) {
  char tmpl[] = "/tmp/kina-deep-XXXXXX";
  BOOST_REQUIRE(::mkdtemp(tmpl));
  fsys::path root = fsys::path(tmpl) / "tree";
  BOOST_REQUIRE(::mkdir(root.c_str(), 0700) == 0);
  const int depth = 3000;
  {
    UniqueFd cur(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (int i = 0; i < depth; ++i) {
      UniqueFd f(::openat(cur.get(), "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
      BOOST_REQUIRE(f.valid());
      BOOST_REQUIRE(::write(f.get(), "xy", 2) == 2);
      BOOST_REQUIRE(::symlinkat("/etc", cur.get(), "l") == 0);  // never followed
      BOOST_REQUIRE(::mkdirat(cur.get(), "d", 0700) == 0);
      UniqueFd next(::openat(cur.get(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      BOOST_REQUIRE(next.valid());
      cur = std::move(next);
    }
  }
  rlimit saved{};
  BOOST_REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlimit low = saved;
  low.rlim_cur = 64;
  BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  TreeStats st;
  std::unordered_set<uint64_t> seen;
  {
    UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    BOOST_REQUIRE(fd.valid());
    tree_stats(fd.get(), st, seen);
  }
  remove_tree(root);
  bool gone = !fsys::exists(root);
  BOOST_REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
  BOOST_TEST(st.files == 3u * depth);
  BOOST_TEST(st.bytes == 2u * depth);
  BOOST_TEST(gone);
  BOOST_TEST(fsys::exists("/etc/passwd"));
  fsys::remove_all(tmpl);
}
