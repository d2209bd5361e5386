// fuzz_kubeconfig: the kubeconfig reader (tools/kina-kube/kubeconfig.hpp on yaml.hpp) must
// never crash on any input, and whatever it accepts must survive emit -> parse,
// merge into another config and unmerge again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tools/kina-kube/kubeconfig.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = kina::kubeconfig::parse(text, "fuzz");
  if (!cfg) return 0;
  auto out = kina::yaml::emit(*cfg);
  if (!out) return 0;  // e.g. invalid UTF-8 the emitter refuses: reported, not a crash
  auto again = kina::kubeconfig::parse(*out, "fuzz-emitted");
  if (!again) std::abort();  // what we write must read back
  kina::yaml::Node merged = *again;
  kina::kubeconfig::merge(merged, *cfg);
  (void)kina::kubeconfig::unmerge(merged, "c1", kina::kubeconfig::current_context(*cfg));
  (void)kina::yaml::emit(merged);
  return 0;
}
