// Fuzzes the parser of `container list --format json` (tools/kina-vm/apple.hpp):
// any bytes give containers or an Exit::data error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/kina-vm/apple.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  auto r = kina::vm::apple::parse_list(in);
  if (!r && r.error().exit != kina::Exit::data) __builtin_trap();
  return 0;
}
