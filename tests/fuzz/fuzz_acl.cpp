// fuzz_acl: the POSIX ACL checks of kina-image (tools/kina-image/acl.hpp) on
// xattr values from a layer. Any bytes must parse or be refused, never crash;
// an accepted value re-encodes to the same bytes; what finish() builds from
// any entries reads back; the /etc/passwd reader takes any text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tools/kina-image/acl.hpp"

namespace acl = kina::image::acl;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string why;
  if (auto entries = acl::parse(in, why)) {
    if (acl::encode(*entries) != in) std::abort();
    std::string why2;
    auto again = acl::finish(*entries, why2);
    if (!again || *again != in) std::abort();  // already sorted and valid: finish() keeps it
  } else if (why.empty()) {
    std::abort();  // a refusal always says why
  }
  // Entries in any order (as libarchive hands them over): finish() sorts and
  // checks; whatever it accepts parses back.
  std::vector<acl::Entry> raw;
  for (size_t off = 0; off + 8 <= size && raw.size() < 64; off += 8)
    raw.push_back({static_cast<uint16_t>(acl::get_le(in, off, 2)), static_cast<uint16_t>(acl::get_le(in, off + 2, 2)),
                   acl::get_le(in, off + 4, 4)});
  std::string why3;
  if (auto v = acl::finish(raw, why3)) {
    std::string why4;
    if (!raw.empty() && !acl::parse(*v, why4)) std::abort();
  }
  (void)acl::parse_id_file(in);
  return 0;
}
