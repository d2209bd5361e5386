// curl_lazy.hpp: libcurl loaded on first use (dlopen), so that the commands
// that never touch a registry do not pay for loading it at every start.
#pragma once

// Start-up cost: libcurl brings about 35 shared libraries (TLS, Kerberos,
// LDAP, IDN, ...) whose loading and relocation cost more than everything
// else a `kina-image list` or `inspect` does. kina-image is therefore linked
// without -lcurl and resolves the dozen functions it uses when a command
// first needs them: curl::easy_init() stands for curl_easy_init() and so on.
// A call that went to libcurl's own symbol instead would fail to link.

#include <dlfcn.h>

#include <mutex>
#include <string>

#include <curl/curl.h>
#include <fmt/format.h>

#include "kina/error.hpp"

namespace kina::image {

namespace curl_detail {

struct Api {
  decltype(&::curl_global_init) global_init = nullptr;
  decltype(&::curl_easy_init) easy_init = nullptr;
  decltype(&::curl_easy_cleanup) easy_cleanup = nullptr;
  decltype(&::curl_easy_reset) easy_reset = nullptr;
  decltype(&::curl_easy_perform) easy_perform = nullptr;
  decltype(&::curl_easy_strerror) easy_strerror = nullptr;
  decltype(&::curl_easy_escape) easy_escape = nullptr;
  decltype(&::curl_free) free = nullptr;
  decltype(&::curl_slist_append) slist_append = nullptr;
  decltype(&::curl_slist_free_all) slist_free_all = nullptr;
  CURLcode (*easy_setopt)(CURL*, CURLoption, ...) = nullptr;
  CURLcode (*easy_getinfo)(CURL*, CURLINFO, ...) = nullptr;
  std::string error;  // why loading failed; empty when loaded
};

template <typename F>
bool bind(void* lib, const char* name, F& fn, std::string& error) {
  fn = reinterpret_cast<F>(::dlsym(lib, name));
  if (!fn && error.empty()) error = fmt::format("libcurl has no {}", name);
  return fn != nullptr;
}

// Loaded once per process, then never unloaded (libcurl keeps global state).
inline const Api& api() {
  static Api a;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = ::dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = ::dlerror();
      a.error = why ? why : "dlopen failed";
      return;
    }
    bind(lib, "curl_global_init", a.global_init, a.error);
    bind(lib, "curl_easy_init", a.easy_init, a.error);
    bind(lib, "curl_easy_cleanup", a.easy_cleanup, a.error);
    bind(lib, "curl_easy_reset", a.easy_reset, a.error);
    bind(lib, "curl_easy_perform", a.easy_perform, a.error);
    bind(lib, "curl_easy_strerror", a.easy_strerror, a.error);
    bind(lib, "curl_easy_escape", a.easy_escape, a.error);
    bind(lib, "curl_free", a.free, a.error);
    bind(lib, "curl_slist_append", a.slist_append, a.error);
    bind(lib, "curl_slist_free_all", a.slist_free_all, a.error);
    bind(lib, "curl_easy_setopt", a.easy_setopt, a.error);
    bind(lib, "curl_easy_getinfo", a.easy_getinfo, a.error);
    if (a.error.empty() && a.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) a.error = "curl_global_init failed";
  });
  return a;
}

}  // namespace curl_detail

// Loads libcurl (once); an error (69) names why when it cannot be used. Every
// command that reaches a registry calls this before any function below.
inline Status load_curl() {
  const auto& a = curl_detail::api();
  if (!a.error.empty())
    return make_error(Exit::unavailable, "loading libcurl.so.4", a.error, "install libcurl4 (Debian) or curl (Homebrew)");
  return {};
}

namespace curl {

inline CURL* easy_init() { return curl_detail::api().easy_init(); }
inline void easy_cleanup(CURL* c) { curl_detail::api().easy_cleanup(c); }
inline void easy_reset(CURL* c) { curl_detail::api().easy_reset(c); }
inline CURLcode easy_perform(CURL* c) { return curl_detail::api().easy_perform(c); }
inline const char* easy_strerror(CURLcode rc) { return curl_detail::api().easy_strerror(rc); }
inline char* easy_escape(CURL* c, const char* s, int n) { return curl_detail::api().easy_escape(c, s, n); }
inline void free(void* p) { curl_detail::api().free(p); }
inline curl_slist* slist_append(curl_slist* l, const char* s) { return curl_detail::api().slist_append(l, s); }
inline void slist_free_all(curl_slist* l) { curl_detail::api().slist_free_all(l); }
template <typename T>
CURLcode easy_setopt(CURL* c, CURLoption o, T v) {
  return curl_detail::api().easy_setopt(c, o, v);
}
template <typename T>
CURLcode easy_getinfo(CURL* c, CURLINFO i, T v) {
  return curl_detail::api().easy_getinfo(c, i, v);
}

}  // namespace curl

}  // namespace kina::image
