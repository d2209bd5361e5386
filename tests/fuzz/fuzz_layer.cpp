// Fuzz target: applying a layer (tar, gzip or zstd) to a root directory. The
// input is the layer; after each run the root is removed and a sentinel file
// next to it must be untouched (a write outside the root is a crash).
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/kina-image/layer.hpp"
#include "tools/kina-image/unpack.hpp"

namespace {
struct Dirs {
  std::string base, root, sentinel;
  Dirs() {
    char tmpl[] = "/tmp/kina-fuzz-layer.XXXXXX";
    base = ::mkdtemp(tmpl);
    root = base + "/root";
    sentinel = base + "/sentinel";
    int fd = ::open(sentinel.c_str(), O_CREAT | O_WRONLY, 0600);
    (void)!::write(fd, "keep", 4);
    ::close(fd);
  }
  ~Dirs() {
    std::error_code ec;
    kina::fsys::remove_all(base, ec);
  }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kina;
  using namespace kina::image;
  static Dirs dirs;
  if (size > 0 && (data[0] & 1)) ::setenv("KINA_NO_OPENAT2", "1", 1);
  else ::unsetenv("KINA_NO_OPENAT2");
  UniqueFd in(::memfd_create("layer", MFD_CLOEXEC));
  (void)!::write(in.get(), data, size);
  ::lseek(in.get(), 0, SEEK_SET);
  ::mkdir(dirs.root.c_str(), 0700);
  {
    UniqueFd root(::open(dirs.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    RootResolver res(root.get());
    Limits limits;
    limits.max_bytes = 64u << 20;
    limits.max_entries = 10000;
    ApplyCounters counters;
    RootMeta meta;
    LayerApplier applier(res, limits, counters, meta);
    (void)applier.apply(in.get(), "fuzz");
  }
  remove_tree(dirs.root);
  // Nothing but root/ and the sentinel may exist in base.
  auto data_now = read_file(dirs.sentinel);
  if (!data_now || *data_now != "keep") __builtin_trap();
  size_t n = 0;
  for (const auto& e : fsys::directory_iterator(dirs.base)) {
    (void)e;
    ++n;
  }
  if (n != 1) __builtin_trap();
  return 0;
}
