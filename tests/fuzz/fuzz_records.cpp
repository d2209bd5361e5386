// Fuzz target: the NDJSON record reader (parse, apiVersion check, field access).
#include <cstddef>
#include <cstdint>
#include <string>

#include "kina/record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto reader = kina::RecordReader::from_string(std::string(reinterpret_cast<const char*>(data), size), "<fuzz>", 4096);
  for (int i = 0; i < 1000; ++i) {
    auto r = reader.next();
    if (!r.ok() || !r->has_value()) break;
    const kina::Record& rec = **r;
    (void)rec.string_field("name");
    (void)rec.int_field("seq");
    kina::json::Writer w;
    w.begin_object().field("kind", rec.kind).field("raw", rec.raw).end_object();
  }
  return 0;
}
