// Fuzz target: the YAML reader (libyaml events to a node tree, limits) and the emitter round trip.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "kina/yaml.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  kina::yaml::Limits lim;
  lim.max_nodes = 20000;
  lim.max_depth = 64;
  auto docs = kina::yaml::parse_all(std::string_view(reinterpret_cast<const char*>(data), size), "<fuzz>", lim);
  if (!docs.ok()) return 0;
  for (const auto& d : *docs) {
    auto text = kina::yaml::emit(d);
    if (text.ok()) (void)kina::yaml::parse_all(*text, "<emitted>", lim);
  }
  return 0;
}
