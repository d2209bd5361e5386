// archive_error.hpp: libarchive's error text, never a null pointer, with the
// OS error behind it when libarchive's own text leaves it out ("Write error:
// No space left on device").
#pragma once

#include <archive.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace kina::image {

inline std::string archive_error(archive* a) {
  const char* s = archive_error_string(a);
  std::string msg = s ? s : "unknown libarchive error";
  int e = archive_errno(a);
  // (EILSEQ and EINVAL are libarchive's own "bad format" and "misuse" codes.)
  if (e > 0 && e != EILSEQ && e != EINVAL) {
    std::string os = std::strerror(e);
    if (msg.find(os) == std::string::npos) msg += ": " + os;
  }
  return msg;
}

}  // namespace kina::image
