// Fuzz target: signed-note, checkpoint and vkey parsers.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kina/note.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  auto n = kina::note::parse(s);
  if (n.ok()) (void)kina::note::parse_checkpoint(n->text);
  (void)kina::note::parse_checkpoint(s);
  auto v = kina::note::parse_vkey(s);
  if (v.ok() && n.ok()) (void)kina::note::verify(*n, *v);
  return 0;
}
