// Fuzzes the agent protocol readers (tools/kina-vm/wire.hpp): frame splitting
// and the exec/entry payload decoders must never crash or over-read.
#include <cstddef>
#include <cstdint>
#include <string>

#include "tools/kina-vm/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kina::wire;
  std::string in(reinterpret_cast<const char*>(data), size);
  FrameBuffer fb;
  size_t half = size / 2;
  fb.append(in.data(), half);
  int frames = 0;
  auto drain = [&] {
    while (auto f = fb.next()) {
      ++frames;
      (void)ExecRequest::decode(f->payload);
      (void)Entry::decode(f->payload);
      Decoder d(f->payload);
      (void)d.strs();
      if (auto e = Entry::decode(f->payload)) (void)safe_relative(e->path);
    }
  };
  drain();
  fb.append(in.data() + half, size - half);
  drain();
  (void)ExecRequest::decode(in);
  return frames >= 0 ? 0 : 1;
}
