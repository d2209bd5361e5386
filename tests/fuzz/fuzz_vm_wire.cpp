// fuzz_vm_wire: the agent protocol's frame reader and payload decoders
// (tools/kina-vm/guest/wire.hpp), which the host runs on bytes from a guest that is
// trusted less than the host. Any byte stream must split into frames or set
// bad(), never crash; every payload the decoders accept must re-encode to a
// payload that decodes to the same request or entry.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "tools/kina-vm/guest/wire.hpp"

namespace w = kina::wire;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  // Fed in two pieces, as a socket may deliver them.
  w::FrameBuffer fb;
  size_t cut = size ? data[0] % (size + 1) : 0;
  fb.append(in.data(), cut);
  size_t consumed = 0;
  auto drain = [&] {
    while (auto f = fb.next()) {
      consumed += w::kHeader + f->payload.size();
      if (f->payload.size() + 5 > w::kMaxFrame) std::abort();
      // A frame re-encodes to the same bytes.
      std::string again = w::encode(f->type, f->session, f->payload);
      if (again.size() != w::kHeader + f->payload.size()) std::abort();
    }
  };
  drain();
  fb.append(in.data() + cut, size - cut);
  drain();
  if (consumed > size) std::abort();

  // The payload decoders on the raw input.
  if (auto r = w::ExecRequest::decode(in)) {
    auto r2 = w::ExecRequest::decode(r->encode());
    if (!r2 || r2->tty != r->tty || r2->rows != r->rows || r2->cols != r->cols || r2->cwd != r->cwd ||
        r2->user != r->user || r2->argv != r->argv || r2->env != r->env)
      std::abort();
  }
  if (auto e = w::Entry::decode(in)) {
    auto e2 = w::Entry::decode(e->encode());
    if (!e2 || e2->kind != e->kind || e2->mode != e->mode || e2->uid != e->uid || e2->gid != e->gid ||
        e2->size != e->size || e2->path != e->path || e2->link != e->link)
      std::abort();
    // A path safe_relative accepts never climbs out of its root.
    if (w::safe_relative(e->path) &&
        (e->path.front() == '/' || e->path == ".." || e->path.starts_with("../") ||
         e->path.find("/../") != std::string::npos || e->path.ends_with("/..")))
      std::abort();
  }
  return 0;
}
