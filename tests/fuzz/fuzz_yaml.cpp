// fuzz_yaml: the YAML reader (kina/yaml.hpp on libyaml) must never crash or
// exceed its limits on any input, and every document it accepts must survive
// emit -> parse with the same shape, keys and scalar values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "kina/yaml.hpp"

namespace {

// Same data: nulls match nulls (a plain `~` may come back as `null`); scalars
// match by value; collections element by element, mappings in order.
bool same(const kina::yaml::Node& a, const kina::yaml::Node& b) {
  if (a.is_null() || b.is_null()) return a.is_null() && b.is_null();
  if (a.type != b.type) return false;
  switch (a.type) {
    case kina::yaml::Type::scalar:
      return a.value == b.value;
    case kina::yaml::Type::sequence:
      if (a.items.size() != b.items.size()) return false;
      for (size_t i = 0; i < a.items.size(); ++i)
        if (!same(a.items[i], b.items[i])) return false;
      return true;
    case kina::yaml::Type::mapping:
      if (a.map.size() != b.map.size()) return false;
      for (size_t i = 0; i < a.map.size(); ++i)
        if (a.map[i].first != b.map[i].first || !same(a.map[i].second, b.map[i].second)) return false;
      return true;
    case kina::yaml::Type::null:
      return true;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  kina::yaml::Limits lim;
  lim.max_nodes = 20'000;
  lim.max_alias_bytes = 1u << 20;
  auto docs = kina::yaml::parse_all(text, "fuzz", lim);
  if (!docs) return 0;
  for (const auto& doc : *docs) {
    auto out = kina::yaml::emit(doc);
    if (!out) continue;  // e.g. invalid UTF-8 the emitter refuses: reported, not a crash
    auto again = kina::yaml::parse(*out, "fuzz-emitted");
    if (!again) std::abort();  // what we write must read back
    if (!same(doc, *again)) std::abort();
  }
  return 0;
}
