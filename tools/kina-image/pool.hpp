// pool.hpp: runs jobs 0..n-1 on a few threads and carries the first error
// (an exception included) back to the caller as a Status.
#pragma once

#include <algorithm>
#include <atomic>
#include <exception>
#include <functional>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "kina/error.hpp"

namespace kina::image {

// Calls job(i) for every i < n on up to `threads` threads (the caller's is one
// of them); after the first failure no new job starts. An exception a job
// throws is its error: it never reaches std::terminate.
inline Status run_pool(size_t n, int threads, const std::function<Status(size_t)>& job) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  std::optional<Error> first;
  auto fail = [&](Error e) {
    std::lock_guard<std::mutex> g(mu);
    if (!first) first = std::move(e);
  };
  auto failed = [&] {
    std::lock_guard<std::mutex> g(mu);
    return first.has_value();
  };
  auto worker = [&]() noexcept {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= n || failed()) return;
      try {
        Status st = job(i);
        if (!st) return fail(st.error());
      } catch (const std::bad_alloc&) {
        return fail(make_error(Exit::os, "out of memory"));
      } catch (const std::exception& e) {
        return fail(make_error(Exit::internal, "internal error (a bug)", e.what()));
      } catch (...) {
        return fail(make_error(Exit::internal, "internal error (a bug)", "unknown exception"));
      }
    }
  };
  size_t count = std::min<size_t>(static_cast<size_t>(std::max(1, threads)), std::max<size_t>(1, n));
  std::vector<std::thread> pool;
  try {
    for (size_t i = 1; i < count; ++i) pool.emplace_back(worker);
  } catch (const std::system_error& e) {
    if (pool.empty()) fail(make_error(Exit::os, "starting a thread", e.what()));  // else: fewer threads will do
  }
  worker();
  for (auto& t : pool) t.join();
  if (first) return *first;
  return {};
}

}  // namespace kina::image
