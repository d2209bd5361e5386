#define BOOST_TEST_MODULE image_temp
#include <boost/test/unit_test.hpp>

#include "../test_support.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <stdexcept>

#include "import.hpp"
#include "pool.hpp"
#include "temp.hpp"

using namespace kina;
using namespace kina::image;
using kina::unit::TempDir;
using kina::unit::both_modes;

namespace {
}  // namespace

// Issue 8 (item 10): an exception in a pull worker thread called
// std::terminate. run_pool carries it back as the pool's error.
BOOST_AUTO_TEST_CASE(pool_exception_is_an_error) {
  std::atomic<int> ran{0};
  auto st = run_pool(8, 4, [&](size_t i) -> Status {
    ++ran;
    if (i == 3) throw std::runtime_error("boom");
    return {};
  });
  BOOST_REQUIRE(!st);
  BOOST_TEST(code(st.error().exit) == code(Exit::internal));
  BOOST_TEST(st.error().message().find("boom") != std::string::npos);
  auto oom = run_pool(2, 2, [](size_t) -> Status { throw std::bad_alloc(); });
  BOOST_REQUIRE(!oom);
  BOOST_TEST(code(oom.error().exit) == code(Exit::os));
  auto fine = run_pool(100, 4, [&](size_t) -> Status { return {}; });
  BOOST_TEST(static_cast<bool>(fine));
}

// A temporary its owner holds is never swept; one whose owner died is.
BOOST_AUTO_TEST_CASE(sweep_only_stale) {
  TempDir t;
  auto live = Temp::make(t.path, ".x.kina-tmp.", true, nullptr);
  BOOST_REQUIRE(live);
  BOOST_TEST(sweep_stale(t.path, ".x.kina-tmp.") == 0u);
  BOOST_TEST(fsys::exists(live->path()));
  // A dead owner: a child makes one and exits without cleaning up.
  pid_t pid = ::fork();
  if (pid == 0) {
    auto dead = Temp::make(t.path, ".x.kina-tmp.", false, nullptr);
    ::_exit(dead ? 0 : 1);  // no destructor runs: like kill -9
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  BOOST_REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  size_t n = 0;
  for (const auto& e : fsys::directory_iterator(t.path)) (void)e, ++n;
  BOOST_TEST(n == 2u);
  BOOST_TEST(sweep_stale(t.path, ".x.kina-tmp.") == 1u);
  BOOST_TEST(fsys::exists(live->path()));
  fsys::path p = live->path();
  live->remove();
  BOOST_TEST(!fsys::exists(p));
}

BOOST_AUTO_TEST_CASE(oci_ref_names) {
  for (const char* ok : {"v1.0", "latest", "a--b", "example.com/x/y:1", "a_b", "1"}) BOOST_TEST(valid_oci_ref_name(ok), ok);
  for (const char* bad : {"", "-x", "x-", "a b", "a//b", "a---b", "ü", "a\nb"}) BOOST_TEST(!valid_oci_ref_name(bad), bad);
}
