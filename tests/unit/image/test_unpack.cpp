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

#if KINA_HAVE_EXT2FS
namespace {

// An image of plain tar layers put in `store`.
ImageInfo image_of(const Store& store, const std::vector<std::string>& tars) {
  ImageInfo img;
  for (const auto& tar : tars) {
    auto d = store.put_blob(tar);
    BOOST_TEST_REQUIRE(d.ok());
    img.layers.push_back({Descriptor{"application/vnd.oci.image.layer.v1.tar", *d, static_cast<int64_t>(tar.size()), {}}, *d});
  }
  return img;
}

}  // namespace

// write_disk (disk.hpp): entries, a hardlink, a whiteout and an opaque
// directory of a later layer; the record's counts are the tree's (lost+found,
// which the disk needs and the image lacks, not counted).
BOOST_AUTO_TEST_CASE(disk_from_layers_counts_the_tree) {
  TempDir t;
  auto store = Store::open(t.path.string() + "/store");
  BOOST_TEST_REQUIRE(store.ok());
  auto img = image_of(*store, {test::Tar().dir("a").file("a/x", "12345").hardlink("a/y", "a/x").file("gone", "zz").dir("o").file("o/old", "1").bytes(),
                               test::Tar().file(".wh.gone", "").file("o/.wh..wh..opq", "").file("o/new", "abc").bytes()});
  DiskFallback fb;
  auto r = write_disk(*store, img, t.path / "d.img", 0, Limits{}, nullptr, fb);
  BOOST_TEST_REQUIRE(r.ok(), (r ? "" : r.error().message()));
  BOOST_TEST(!fb.wanted);
  BOOST_TEST(r->stats.files == 5u);  // a a/x a/y o o/new
  BOOST_TEST(r->stats.bytes == 8u);  // a/x once, o/new
  auto names = names_in(t.path);
  std::sort(names.begin(), names.end());
  BOOST_TEST((names == std::vector<std::string>{"d.img", "store"}));
}

// A bad entry (a hardlink to a directory) fails the whole disk: 65, no disk,
// no temporary; a disk that exists is never replaced.
BOOST_AUTO_TEST_CASE(disk_refused_leaves_nothing) {
  TempDir t;
  auto store = Store::open(t.path.string() + "/store");
  BOOST_TEST_REQUIRE(store.ok());
  auto img = image_of(*store, {test::Tar().dir("d").hardlink("h", "d").bytes()});
  DiskFallback fb;
  auto r = write_disk(*store, img, t.path / "d.img", 0, Limits{}, nullptr, fb);
  BOOST_TEST_REQUIRE(!r.ok());
  BOOST_TEST((r.error().exit == Exit::data));
  BOOST_TEST(r.error().why == "hardlink target \"d\" is a directory");
  BOOST_TEST((names_in(t.path) == std::vector<std::string>{"store"}));
  std::ofstream(t.path / "e.img") << "theirs";
  auto ok_img = image_of(*store, {test::Tar().file("f", "x").bytes()});
  r = write_disk(*store, ok_img, t.path / "e.img", 0, Limits{}, nullptr, fb);
  BOOST_TEST_REQUIRE(!r.ok());
  BOOST_TEST((r.error().exit == Exit::cant_create));
  std::ifstream in(t.path / "e.img");
  BOOST_TEST(std::string(std::istreambuf_iterator<char>(in), {}) == "theirs");
}

// The rename at the end never replaces a disk made at the same path while
// the layers were written (the layer is a FIFO: the race is deterministic).
BOOST_AUTO_TEST_CASE(disk_created_while_writing_is_not_replaced) {
  TempDir t;
  auto store = Store::open(t.path.string() + "/store");
  BOOST_TEST_REQUIRE(store.ok());
  std::string tar = test::Tar().file("hello", "world").bytes();
  Digest d = Digest::of_data(tar);
  BOOST_TEST_REQUIRE(::mkfifo(store->blob_path(d).c_str(), 0600) == 0);
  ImageInfo img;
  img.layers.push_back({Descriptor{"application/vnd.oci.image.layer.v1.tar", d, static_cast<int64_t>(tar.size()), {}}, d});
  std::string parent = t.path.string() + "/out", out = parent + "/d.img";
  BOOST_TEST_REQUIRE(::mkdir(parent.c_str(), 0700) == 0);
  std::thread racer([&] {
    // Opening the FIFO waits for write_disk to open the layer (after its
    // check that the disk does not exist); the disk appears, then the data.
    int fd = ::open(store->blob_path(d).c_str(), O_WRONLY);
    std::ofstream(out) << "theirs";
    if (fd >= 0) {
      (void)write_all(fd, tar, "fifo");
      ::close(fd);
    }
  });
  DiskFallback fb;
  auto r = write_disk(*store, img, out, 8u << 20, Limits{}, nullptr, fb);
  racer.join();
  BOOST_TEST_REQUIRE(!r.ok());
  BOOST_TEST((r.error().exit == Exit::cant_create));
  BOOST_TEST(r.error().why == "it was created meanwhile");
  std::ifstream in(out);
  BOOST_TEST(std::string(std::istreambuf_iterator<char>(in), {}) == "theirs");
  BOOST_TEST(names_in(parent) == std::vector<std::string>{"d.img"});
}

// Sparse files (GNU sparse entries): data at offsets that are not block
// aligned, two ranges in one block, a range across the 4 MiB write buffer,
// a trailing hole; the disk's file reads back byte for byte (debugfs), the
// holes count against the byte cap as in the directory writer.
BOOST_AUTO_TEST_CASE(disk_sparse_files_read_back) {
  TempDir t;
  auto store = Store::open(t.path.string() + "/store");
  BOOST_TEST_REQUIRE(store.ok());
  std::string data(20u << 20, '\0');
  std::vector<std::pair<int64_t, int64_t>> ranges = {{0, 512}, {1536, 512}, {5120, 1024}, {(3 << 20) + 512, 5u << 20}, {(12 << 20), 4096}};
  uint64_t stored = 0;
  for (auto [off, len] : ranges) {
    for (int64_t i = 0; i < len; ++i) data[static_cast<size_t>(off + i)] = static_cast<char>('a' + (off + i) % 23);
    stored += static_cast<uint64_t>(len);
  }
  auto img = image_of(*store, {test::Tar().sparse("s", data, ranges).file("after", "z").bytes()});
  DiskFallback fb;
  auto r = write_disk(*store, img, t.path / "d.img", 64u << 20, Limits{}, nullptr, fb);
  BOOST_TEST_REQUIRE(r.ok(), (r ? "" : r.error().message()));
  BOOST_TEST(r->stats.bytes == data.size() + 1);
  std::string out = (t.path / "s.out").string();
  std::string cmd = "debugfs -R 'dump /s " + out + "' " + (t.path / "d.img").string() + " >/dev/null 2>&1";
  BOOST_TEST_REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(out, std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), {});
  BOOST_TEST(got.size() == data.size());
  BOOST_TEST((got == data));
  // The holes are apparent size: a cap between the stored and the apparent bytes refuses.
  Limits small;
  small.max_bytes = stored + (1u << 20);
  auto capped = write_disk(*store, img, t.path / "c.img", 64u << 20, small, nullptr, fb);
  BOOST_TEST_REQUIRE(!capped.ok());
  BOOST_TEST(capped.error().why.find("uncompressed bytes in total") != std::string::npos);
}

// The default size comes from what the blobs tell: gzip's ISIZE when it is
// plausible, a plain tar's size, a guess for zstd.
BOOST_AUTO_TEST_CASE(layer_size_hints) {
  TempDir t;
  auto hint = [&](const std::string& bytes, bool& exact) {
    std::string p = t.path.string() + "/blob";
    std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
    UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC));
    return layer_size_hint(fd.get(), exact);
  };
  bool exact = false;
  std::string gz("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03", 10);
  gz += std::string(20, 'x') + std::string("\x00\x00\x10\x00", 4);  // ISIZE 1 MiB
  BOOST_TEST(hint(gz, exact) == (1u << 20));
  BOOST_TEST(exact);
  std::string wrapped = gz.substr(0, gz.size() - 4) + std::string("\x05\x00\x00\x00", 4);  // 5 bytes: a second member or a wrap
  BOOST_TEST(hint(wrapped, exact) == wrapped.size() * 6);
  BOOST_TEST(!exact);
  std::string zst("\x28\xb5\x2f\xfd", 4);
  zst += std::string(30, 'z');
  BOOST_TEST(hint(zst, exact) == zst.size() * 6);
  BOOST_TEST(!exact);
  std::string tar = test::Tar().file("a", "b").bytes();
  BOOST_TEST(hint(tar, exact) == tar.size());
  BOOST_TEST(exact);
}
#endif
