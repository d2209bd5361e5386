// error.hpp: errors as values (Error, Result<T>, Status) until main maps them to an exit code.
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

#include "kina/exit.hpp"

namespace kina {

// One failure: the exit code it maps to, what was being done, why it failed,
// and an optional hint. Rendered as `tool: error: <what>: <why>`.
struct Error {
  Exit exit = Exit::internal;
  std::string what;
  std::string why;
  std::string hint;

  std::string message() const { return why.empty() ? what : what + ": " + why; }
};

inline Error make_error(Exit e, std::string what, std::string why = {}, std::string hint = {}) {
  return Error{e, std::move(what), std::move(why), std::move(hint)};
}

// An OS error: `what` plus strerror(err). Out of space (ENOSPC, EDQUOT,
// EFBIG) is an I/O error (74) where the caller did not choose a code (73
// where it says a file cannot be created), never the generic 71: a full disk
// is 73 or 74 in every tool.
inline Error os_error(std::string what, int err = errno, Exit e = Exit::os) {
  if (e == Exit::os && (err == ENOSPC || err == EDQUOT || err == EFBIG)) e = Exit::io;
  return Error{e, std::move(what), std::strerror(err), {}};
}

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}              // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}          // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const { return std::get<1>(v_); }
  Error& error() { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : err_(std::move(error)), failed_(true) {}  // NOLINT
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return err_; }
  Error& error() { return err_; }

 private:
  Error err_;
  bool failed_ = false;
};

inline Status ok_status() { return {}; }

}  // namespace kina
