// home.hpp: where kina keeps its state: $KINA_HOME, default ~/.kina, mode 0700.
#pragma once

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "kina/error.hpp"
#include "kina/fs.hpp"

namespace kina {

// The user's home directory: $HOME, else the password database.
inline Result<fsys::path> user_home() {
  if (const char* h = std::getenv("HOME"); h && *h) return fsys::path(h);
  if (const passwd* pw = ::getpwuid(::getuid()); pw && pw->pw_dir) return fsys::path(pw->pw_dir);
  return make_error(Exit::config, "finding the home directory", "HOME is not set and the user has no passwd entry");
}

// $KINA_HOME (or ~/.kina), created 0700 if missing. An existing directory that
// others can read is tightened to 0700 when we own it.
inline Result<fsys::path> kina_home(bool create = true) {
  fsys::path home;
  if (const char* k = std::getenv("KINA_HOME"); k && *k) {
    home = k;
  } else {
    auto h = user_home();
    if (!h) return h.error();
    home = *h / ".kina";
  }
  if (home.is_relative()) home = fsys::absolute(home);
  if (!create) return home;
  if (auto st = ensure_dir(home, 0700); !st) return st.error();
  struct stat sb {};
  if (::stat(home.c_str(), &sb) == 0 && sb.st_uid == ::getuid() && (sb.st_mode & 077) != 0) ::chmod(home.c_str(), 0700);
  return home;
}

// $KINA_HOME/<sub>, created 0700.
inline Result<fsys::path> kina_subdir(const fsys::path& sub) {
  auto home = kina_home();
  if (!home) return home.error();
  fsys::path p = *home / sub;
  if (auto st = ensure_dir(p, 0700); !st) return st.error();
  return p;
}

}  // namespace kina
