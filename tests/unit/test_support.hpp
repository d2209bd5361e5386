// test_support.hpp: what several unit tests need: a temporary directory that
// goes away, running a check with and without openat2, and whether a process
// still runs.
#pragma once

#include <stdlib.h>

#include <cstdio>
#include <cstring>

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

// Whether process PID still runs: a zombie nobody reaps (a container's init
// may not) counts as gone.
inline bool pid_alive(long pid) {
  char path[64], line[256] = {};
  std::snprintf(path, sizeof path, "/proc/%ld/stat", pid);
  FILE* s = std::fopen(path, "r");
  if (!s) return false;
  bool got = std::fgets(line, sizeof line, s) != nullptr;
  std::fclose(s);
  const char* close = got ? std::strrchr(line, ')') : nullptr;
  return !(close && (close[2] == 'Z' || close[2] == 'X'));
}

}  // namespace kina::unit
