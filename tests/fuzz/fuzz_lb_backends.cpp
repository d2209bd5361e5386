// fuzz_lb_backends: kina-node lb's backends file (tools/kina-node/lb.hpp)
// must never crash on any input; every backend it accepts is an IPv4
// address and a port in 1..65535 whose text reads back as the same address.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tools/kina-node/lb.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kina;
  using namespace kina::node;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto list = parse_backends(text, "/fuzz/lb-backends");
  if (!list) {
    if (list.error().exit != Exit::data) std::abort();  // a bad file is bad data, never anything else
    return 0;
  }
  for (const auto& e : *list) {
    if (e.addr.sin_family != AF_INET || ntohs(e.addr.sin_port) == 0) std::abort();
    auto again = parse_endpoint("again", e.text);
    if (!again || again->addr.sin_addr.s_addr != e.addr.sin_addr.s_addr || again->addr.sin_port != e.addr.sin_port)
      std::abort();
  }
  return 0;
}
