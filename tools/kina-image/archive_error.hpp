// archive_error.hpp: libarchive's error text, never a null pointer.
#pragma once

#include <archive.h>

#include <string>

namespace kina::image {

inline std::string archive_error(archive* a) {
  const char* s = archive_error_string(a);
  return s ? s : "unknown libarchive error";
}

}  // namespace kina::image
