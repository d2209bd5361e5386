// guest_config.hpp: the host's writer of /kina.conf, the config kina-init
// reads at boot: one "key value" line per entry, where no value can start a
// line of its own (image Env and WorkingDir come from untrusted images).
#pragma once

#include <string>
#include <string_view>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/validate.hpp"

namespace kina::vm {

// A value may become one config line: no newline, carriage return or NUL.
inline Status check_config_value(std::string_view what, std::string_view value, Exit exit = Exit::data) {
  if (value.find_first_of(std::string_view("\n\r\0", 3)) != std::string_view::npos)
    return make_error(exit, fmt::format("invalid {} {}", what, shown(value)),
                      "must not contain a newline, carriage return or NUL (it would add lines to the guest's config)");
  return {};
}

class GuestConfig {
 public:
  // Adds "KEY VALUE"; WHAT names the value's origin in the error.
  Status add(std::string_view key, std::string_view value, std::string_view what) {
    if (auto st = check_config_value(what, value); !st) return st;
    text_.append(key).append(" ").append(value).append("\n");
    return {};
  }
  // The config, closed by the "end" line kina-init requires last.
  std::string text() const { return text_ + "end\n"; }

 private:
  std::string text_;
};

}  // namespace kina::vm
