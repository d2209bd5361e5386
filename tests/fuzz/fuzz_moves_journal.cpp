// fuzz_moves_journal: the journal that install_files (tools/kina-kube/
// install.hpp) leaves in a staging directory, read back after a kill -9 to
// put files back, must never crash on any input; every path it accepts stays
// inside the directory it is joined to, and what it accepts formats to a
// journal that reads back the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tools/kina-kube/install.hpp"

namespace {

bool inside(const kina::fsys::path& rel) {
  if (rel.empty() || rel.is_absolute()) return false;
  kina::fsys::path joined = (kina::fsys::path("/d") / rel).lexically_normal();
  auto r = joined.lexically_relative("/d");
  return !r.empty() && *r.begin() != ".." && *r.begin() != ".";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kina::kube;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto j = parse_moves_journal(text);
  if (!j) return 0;
  for (const auto& d : j->dirs)
    if (!inside(d)) std::abort();
  for (const auto& f : j->files)
    if (!inside(f.rel)) std::abort();
  // Formatting what was accepted reads back the same (numbers may lose leading zeros once).
  std::string once = format_moves_journal(*j);
  auto again = parse_moves_journal(once);
  if (!again || format_moves_journal(*again) != once) std::abort();
  return 0;
}
