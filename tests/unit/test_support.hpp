// test_support.hpp: what several unit tests need: a temporary directory that
// goes away, and running a check with and without openat2.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <functional>
#include <string>

namespace kina::unit {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "kina-unit.XXXXXX").string();
    path = ::mkdtemp(t.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Runs fn twice: resolving with openat2, then with the no-follow walk that
// stands in for it on kernels without it (KINA_NO_OPENAT2, inroot.hpp).
inline void both_modes(const std::function<void()>& fn) {
  ::unsetenv("KINA_NO_OPENAT2");
  fn();
  ::setenv("KINA_NO_OPENAT2", "1", 1);
  fn();
  ::unsetenv("KINA_NO_OPENAT2");
}

}  // namespace kina::unit
