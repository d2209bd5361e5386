// Fuzzes the .modinfo reader of kernel modules (tools/kina-vm/kernel.hpp):
// any bytes give a dependency list or an Exit::data error, never a crash.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/kina-vm/kernel.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  auto r = kina::vm::module_depends(in, "fuzz.ko");
  if (!r && r.error().exit != kina::Exit::data) __builtin_trap();
  return 0;
}
