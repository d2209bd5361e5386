// exit.hpp: the exit codes every kina tool uses (docs/protocol.md, "Exit codes").
#pragma once

#include <string_view>

namespace kina {

// Values follow sysexits.h where a meaning exists there. Never 77 or 99:
// Meson reads those as "skipped" and "hard error".
enum class Exit : int {
  ok = 0,
  negative = 1,        // ran correctly, the answer is "no" (verify found tampering)
  usage = 64,          // bad flags or arguments
  data = 65,           // malformed record, config, manifest, layer
  no_input = 66,       // image, machine, cluster, file not found
  unavailable = 69,    // registry, hypervisor, `container` system
  internal = 70,       // a bug
  os = 71,             // an OS call failed (errno text included)
  cant_create = 73,    // cannot create output
  io = 74,             // I/O error, including a failed write to stdout
  temp_fail = 75,      // lock held, timeout: retrying may work
  config = 78,         // configuration error
  policy = 80,         // the security policy refused the request
};

constexpr int code(Exit e) { return static_cast<int>(e); }

// A child that died of signal N is reported as 128+N, like a shell does.
constexpr int signal_exit(int signo) { return 128 + signo; }

constexpr std::string_view describe(Exit e) {
  switch (e) {
    case Exit::ok: return "success";
    case Exit::negative: return "negative answer";
    case Exit::usage: return "usage error";
    case Exit::data: return "bad input data";
    case Exit::no_input: return "input not found";
    case Exit::unavailable: return "service unavailable";
    case Exit::internal: return "internal error";
    case Exit::os: return "OS error";
    case Exit::cant_create: return "cannot create output";
    case Exit::io: return "I/O error";
    case Exit::temp_fail: return "temporary failure";
    case Exit::config: return "configuration error";
    case Exit::policy: return "refused by policy";
  }
  return "unknown";
}

}  // namespace kina
