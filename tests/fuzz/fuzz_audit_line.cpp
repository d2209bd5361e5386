// Fuzz target: audit log verification over arbitrary log bytes (line splitting,
// hash suffix parsing, JSON fields, Merkle accumulation).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kina/audit.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    std::string t = "/tmp/kina-fuzz-audit-XXXXXX";
    int fd = ::mkstemp(t.data());
    ::close(fd);
    return t;
  }();
  if (!kina::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(data), size), 0600).ok()) return 0;
  auto rep = kina::audit::verify(path, {}, std::nullopt);
  if (rep.ok() && rep->intact() && rep->entries > 0) {
    // An intact log must also give back its leaves and valid proofs.
    auto leaves = kina::audit::leaf_hashes(path);
    if (!leaves.ok() || kina::merkle::subtree_root(*leaves) != rep->root) std::abort();
  }
  return 0;
}
