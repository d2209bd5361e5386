// Unit tests of the host side of `kina-vm cp NAME:SRC DST`: the real client
// (copy_out in client.hpp, wire::TreeSink in transfer.hpp) against a fake
// agent on the machine's control socket that sends crafted entry streams, as
// a hostile guest would. Every case runs with openat2 and with the fallback
// walk (KINA_NO_OPENAT2).
#define BOOST_TEST_MODULE vm_transfer
#include <boost/test/unit_test.hpp>

#include "../test_support.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <pthread.h>
#include <signal.h>

#include <fstream>
#include <functional>
#include <thread>

#include "client.hpp"
#include "guest/transfer.hpp"
#include "guest/wire.hpp"

using namespace kina;
using namespace kina::vm;
using kina::unit::TempDir;
using kina::unit::both_modes;
namespace wire = kina::wire;

namespace {

std::string entry(wire::Entry::Kind k, const std::string& path, uint64_t size = 0, const std::string& link = "",
                  uint32_t mode = 0644) {
  wire::Entry e;
  e.kind = k;
  e.path = path;
  e.size = size;
  e.link = link;
  e.mode = k == wire::Entry::dir ? 0755 : mode;
  e.uid = ::geteuid();
  e.gid = ::getegid();
  return wire::encode(wire::Type::entry, 0, e.encode());
}
std::string data_frame(const std::string& bytes) { return wire::encode(wire::Type::data, 0, bytes); }
std::string end() { return wire::encode(wire::Type::end, 0, ""); }

struct Sandbox {
  std::string base, machine, dest, outside;
  Sandbox() {
    char tmpl[] = "/tmp/kina-cp-test.XXXXXX";
    base = ::mkdtemp(tmpl);
    machine = base + "/m";
    dest = base + "/dest";
    outside = base + "/outside";
    ::mkdir(machine.c_str(), 0700);
    ::mkdir(dest.c_str(), 0700);
    ::mkdir(outside.c_str(), 0700);
  }
  ~Sandbox() { fsys::remove_all(base); }

  // Runs copy_out(NAME:/src/tree, dst) against a fake agent sending `stream`.
  // With signal_after, the agent then stalls and sends that signal to the
  // client's thread (a user pressing Ctrl-C).
  // With intr, the signal goes to the process (kill), as kina-vm gets it,
  // and the copy takes it through intr.
  Status copy(const std::string& stream, const std::string& dst, uint64_t max_bytes = wire::TreeSink::kDefaultMaxBytes,
              int signal_after = 0, const Interrupts* intr = nullptr) {
    pthread_t client = ::pthread_self();
    ::signal(SIGPIPE, SIG_IGN);  // the fake agent may write after the client gave up
    std::string sock = machine + "/" + file::ctl_sock;
    ::unlink(sock.c_str());
    UniqueFd lfd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
    BOOST_TEST_REQUIRE(::bind(lfd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    BOOST_TEST_REQUIRE(::listen(lfd.get(), 1) == 0);
    std::thread agent([&] {
      UniqueFd c(::accept(lfd.get(), nullptr, nullptr));
      if (!c.valid()) return;
      char buf[4096];
      (void)!::read(c.get(), buf, sizeof buf);  // the get request
      (void)wire::write_fully(c.get(), stream);
      if (signal_after) {
        ::usleep(100000);
        if (intr) ::kill(::getpid(), signal_after);
        else ::pthread_kill(client, signal_after);
      } else {
        ::shutdown(c.get(), SHUT_WR);
      }
      while (::read(c.get(), buf, sizeof buf) > 0) {
      }
    });
    Status st;
    {
      auto conn = AgentConnection::open(machine, "n1");  // closed at the end of the block: the agent thread ends
      st = conn ? copy_out(*conn, "/src/tree", dst, max_bytes, intr) : Status(conn.error());
    }
    agent.join();
    return st;
  }

  bool exists(const std::string& p) const {
    struct stat sb {};
    return ::lstat(p.c_str(), &sb) == 0;
  }
  // Names in dir, the fake agent's socket left out.
  std::vector<std::string> names(const std::string& dir) const {
    std::vector<std::string> out;
    std::error_code ec;
    for (const auto& e : fsys::directory_iterator(dir, ec)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

}  // namespace

// The reproduction of the issue: an entry "a" that is a symlink to a host
// directory, then "a/x", wrote the host directory's x.
BOOST_AUTO_TEST_CASE(symlink_parent_is_never_followed) {
  both_modes([] {
    Sandbox s;
    std::string stream = entry(wire::Entry::dir, "") + entry(wire::Entry::symlink, "a", 0, s.outside) +
                         entry(wire::Entry::file, "a/x", 3) + data_frame("pwn") + end();
    auto st = s.copy(stream, s.dest + "/out");
    BOOST_TEST(!st.ok());
    BOOST_TEST(!s.exists(s.outside + "/x"));
    BOOST_TEST(s.names(s.outside).empty());
    BOOST_TEST(!s.exists(s.dest + "/out"), "the failed copy is removed");
  });
}

// A symlink already on the host side is no parent either.
BOOST_AUTO_TEST_CASE(existing_host_symlink_is_never_a_parent) {
  both_modes([] {
    Sandbox s;
    // cp NAME:/src/tree DEST/out with DEST/out a directory writes DEST/out/tree.
    ::mkdir((s.dest + "/out").c_str(), 0755);
    ::mkdir((s.dest + "/out/tree").c_str(), 0755);
    BOOST_TEST_REQUIRE(::symlink(s.outside.c_str(), (s.dest + "/out/tree/a").c_str()) == 0);
    std::string stream = entry(wire::Entry::dir, "") + entry(wire::Entry::file, "a/x", 3) + data_frame("pwn") + end();
    auto st = s.copy(stream, s.dest + "/out");
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST((st.error().exit == Exit::data));
    BOOST_TEST(st.error().why.find("symlink") != std::string::npos, st.error().message());
    BOOST_TEST(!s.exists(s.outside + "/x"));
    // A root (DEST/out/tree) that is a symlink to a directory is refused too.
    ::mkdir((s.dest + "/out2").c_str(), 0755);
    BOOST_TEST_REQUIRE(::symlink(s.outside.c_str(), (s.dest + "/out2/tree").c_str()) == 0);
    auto st2 = s.copy(entry(wire::Entry::dir, "") + entry(wire::Entry::file, "y", 3) + data_frame("pwn") + end(), s.dest + "/out2");
    BOOST_TEST_REQUIRE(!st2.ok());
    BOOST_TEST((st2.error().exit == Exit::data), st2.error().message());
    BOOST_TEST(!s.exists(s.outside + "/y"));
  });
}

// The root sent as a symlink to a host directory, then entries below it.
BOOST_AUTO_TEST_CASE(symlink_root_is_never_followed) {
  both_modes([] {
    Sandbox s;
    std::string stream = entry(wire::Entry::symlink, "", 0, s.outside) + entry(wire::Entry::file, "x", 3) + data_frame("pwn") + end();
    auto st = s.copy(stream, s.dest + "/out");
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST((st.error().exit == Exit::data));
    BOOST_TEST(!s.exists(s.outside + "/x"));
    BOOST_TEST(!s.exists(s.dest + "/out"));
    // Alone, a symlink root is copied as a symlink (stored, not followed).
    auto ok = s.copy(entry(wire::Entry::symlink, "", 0, s.outside) + end(), s.dest + "/out");
    BOOST_TEST_REQUIRE(ok.ok());
    BOOST_TEST(fsys::is_symlink(s.dest + "/out"));
    BOOST_TEST(fsys::read_symlink(s.dest + "/out").string() == s.outside);
  });
}

BOOST_AUTO_TEST_CASE(dotdot_absolute_and_odd_names_refused) {
  both_modes([] {
    for (std::string bad : {"../escape", "a/../../escape", "/escape", "a//b", "./a", "a/.", ""}) {
      Sandbox s;
      std::string stream = entry(wire::Entry::dir, "") + entry(wire::Entry::dir, "a") +
                           entry(wire::Entry::file, bad == "/escape" ? s.base + "/escape" : bad, 3) + data_frame("pwn") + end();
      auto st = s.copy(stream, s.dest + "/out");
      BOOST_TEST_REQUIRE(!st.ok(), bad);
      BOOST_TEST((st.error().exit == Exit::data), bad << ": " << st.error().message());
      BOOST_TEST(!s.exists(s.base + "/escape"), bad);
      BOOST_TEST(!s.exists(s.dest + "/escape"), bad);
      BOOST_TEST(!s.exists(s.dest + "/out"), bad);
    }
  });
}

// A later entry cannot go through a symlink the same stream made: symlinks
// are made last, and a directory entry over a symlink name fails.
BOOST_AUTO_TEST_CASE(symlinks_are_made_last) {
  both_modes([] {
    Sandbox s;
    std::string stream = entry(wire::Entry::dir, "") + entry(wire::Entry::dir, "d") + entry(wire::Entry::file, "d/f", 2) +
                         data_frame("ok") + entry(wire::Entry::symlink, "l", 0, "d/f") + end();
    BOOST_TEST_REQUIRE(s.copy(stream, s.dest + "/out").ok());
    BOOST_TEST(fsys::read_symlink(s.dest + "/out/l").string() == "d/f");
    std::ifstream in(s.dest + "/out/d/f");
    BOOST_TEST(std::string(std::istreambuf_iterator<char>(in), {}) == "ok");
    BOOST_TEST(((fsys::status(s.dest + "/out/d").permissions() & fsys::perms::all) == fsys::perms(0755)));
  });
}

// A sparse guest file stays sparse on the host: all-zero blocks are holes.
BOOST_AUTO_TEST_CASE(sparse_file_keeps_its_holes) {
  Sandbox s;
  const uint64_t size = 64ull << 20;
  std::string stream = entry(wire::Entry::file, "", size);
  std::string zeros(wire::kChunk, '\0');
  uint64_t sent = 0;
  while (sent < size) {
    std::string chunk = zeros.substr(0, std::min<uint64_t>(wire::kChunk, size - sent));
    if (sent == (32ull << 20) / wire::kChunk * wire::kChunk) chunk.replace(100, 5, "hello");
    stream += data_frame(chunk);
    sent += chunk.size();
  }
  stream += end();
  auto st = s.copy(stream, s.dest + "/sparse");
  BOOST_TEST_REQUIRE(st.ok(), (st.ok() ? "" : st.error().message()));
  struct stat sb {};
  BOOST_TEST_REQUIRE(::stat((s.dest + "/sparse").c_str(), &sb) == 0);
  BOOST_TEST(static_cast<uint64_t>(sb.st_size) == size);
  BOOST_TEST(static_cast<uint64_t>(sb.st_blocks) * 512 < (1ull << 20), "allocated " << sb.st_blocks * 512);
  std::ifstream in(s.dest + "/sparse", std::ios::binary);
  in.seekg(static_cast<std::streamoff>((32ull << 20) / wire::kChunk * wire::kChunk + 100));
  char buf[5];
  in.read(buf, 5);
  BOOST_TEST(std::string(buf, 5) == "hello");
}

// The sink's cap: more data than --max-bytes fails and leaves nothing;
// holes do not count.
BOOST_AUTO_TEST_CASE(size_cap_and_cleanup) {
  Sandbox s;
  std::string big(4096 * 4, 'x');
  std::string stream = entry(wire::Entry::dir, "") + entry(wire::Entry::dir, "d") + entry(wire::Entry::file, "d/f", big.size()) +
                       data_frame(big) + end();
  auto st = s.copy(stream, s.dest + "/out", 8192);
  BOOST_TEST_REQUIRE(!st.ok());
  BOOST_TEST((st.error().exit == Exit::data));
  BOOST_TEST(st.error().why.find("--max-bytes") != std::string::npos, st.error().message());
  BOOST_TEST(s.names(s.dest).empty());
  std::string holes(4096 * 4, '\0');
  BOOST_TEST(s.copy(entry(wire::Entry::file, "", holes.size()) + data_frame(holes) + end(), s.dest + "/h", 8192).ok());
}

// A file shorter than its declared size, or a stream that stops, leaves
// nothing behind (no temporary, no directory it made); an existing
// destination directory is kept.
BOOST_AUTO_TEST_CASE(incomplete_transfers_leave_nothing) {
  Sandbox s;
  std::string head = entry(wire::Entry::dir, "") + entry(wire::Entry::dir, "d") + entry(wire::Entry::file, "d/f", 10) + data_frame("12345");
  auto st = s.copy(head + end(), s.dest + "/out");
  BOOST_TEST_REQUIRE(!st.ok());
  BOOST_TEST((st.error().exit == Exit::data));
  BOOST_TEST(s.names(s.dest).empty());
  auto cut = s.copy(head, s.dest + "/out");  // no end frame: the connection closes
  BOOST_TEST_REQUIRE(!cut.ok());
  BOOST_TEST(s.names(s.dest).empty());
  // Into an existing directory: what was there stays, what was added goes.
  ::mkdir((s.dest + "/keep").c_str(), 0755);
  ::mkdir((s.dest + "/keep/tree").c_str(), 0755);
  std::ofstream(s.dest + "/keep/tree/old") << "old";
  auto st2 = s.copy(entry(wire::Entry::dir, "") + entry(wire::Entry::file, "new", 1) + data_frame("n") + entry(wire::Entry::file, "short", 9) +
                        data_frame("1") + end(),
                    s.dest + "/keep");
  BOOST_TEST(!st2.ok());
  BOOST_TEST((s.names(s.dest + "/keep/tree") == std::vector<std::string>{"old"}));
}

// Ctrl-C (SIGINT) or SIGTERM during a copy: the client stops and removes
// what it wrote.
BOOST_AUTO_TEST_CASE(interrupted_copy_leaves_nothing) {
  for (int sig : {SIGINT, SIGTERM}) {
    Sandbox s;
    std::string head = entry(wire::Entry::dir, "") + entry(wire::Entry::dir, "d") + entry(wire::Entry::file, "d/f", 10) + data_frame("12345");
    auto st = s.copy(head, s.dest + "/out", wire::TreeSink::kDefaultMaxBytes, sig);
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(code(st.error().exit) == 128 + sig, st.error().message());
    BOOST_TEST(st.error().why.find("interrupted") != std::string::npos);
    BOOST_TEST(s.names(s.dest).empty());
  }
}

// The same in kina-vm, where the signal thread of kina/interrupt.hpp takes
// SIGINT, SIGTERM and SIGHUP: cp holds them and answers at once (the process
// is not ended by the thread), and after the copy a signal ends the process
// again. (No later case sends a signal: the thread stays for the rest of the run.)
BOOST_AUTO_TEST_CASE(interrupted_copy_through_the_signal_thread) {
  static Interrupts intr;
  for (int sig : {SIGINT, SIGHUP}) {
    Sandbox s;
    std::string head = entry(wire::Entry::dir, "") + entry(wire::Entry::file, "f", 10) + data_frame("12345");
    auto st = s.copy(head, s.dest + "/out", wire::TreeSink::kDefaultMaxBytes, sig, &intr);
    BOOST_TEST_REQUIRE(!st.ok());
    BOOST_TEST(code(st.error().exit) == 128 + sig, st.error().message());
    BOOST_TEST(s.names(s.dest).empty());
  }
  // A copy that is not interrupted, through the same thread: complete.
  Sandbox s;
  BOOST_TEST_REQUIRE(s.copy(entry(wire::Entry::file, "", 2) + data_frame("ok") + end(), s.dest + "/f", wire::TreeSink::kDefaultMaxBytes, 0, &intr).ok());
  BOOST_TEST((s.names(s.dest) == std::vector<std::string>{"f"}));
}

// What a kill -9 left (a temporary of a transfer whose process is gone) is
// swept by the next copy into the same directory; a live one is kept.
BOOST_AUTO_TEST_CASE(next_copy_sweeps_temporaries_of_killed_copies) {
  Sandbox s;
  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ::waitpid(dead, nullptr, 0);
  std::string stale = ".kina-cp." + std::to_string(dead) + ".3", live = ".kina-cp.1.3";  // pid 1 is alive
  std::ofstream(s.dest + "/" + stale) << "partial";
  std::ofstream(s.dest + "/" + live) << "partial";
  BOOST_TEST_REQUIRE(s.copy(entry(wire::Entry::file, "", 2) + data_frame("ok") + end(), s.dest + "/f").ok());
  BOOST_TEST((s.names(s.dest) == std::vector<std::string>{live, "f"}));
  // Also in existing directories of the tree being merged into.
  ::mkdir((s.dest + "/d").c_str(), 0755);
  ::mkdir((s.dest + "/d/tree").c_str(), 0755);
  ::mkdir((s.dest + "/d/tree/sub").c_str(), 0755);
  std::ofstream(s.dest + "/d/tree/" + stale) << "partial";
  std::ofstream(s.dest + "/d/tree/sub/" + stale) << "partial";
  BOOST_TEST_REQUIRE(s.copy(entry(wire::Entry::dir, "") + entry(wire::Entry::dir, "sub") + end(), s.dest + "/d").ok());
  BOOST_TEST(s.names(s.dest + "/d/tree") == std::vector<std::string>{"sub"});
  BOOST_TEST(s.names(s.dest + "/d/tree/sub").empty());
}

// The agent runs several puts at once: their temporaries never collide.
BOOST_AUTO_TEST_CASE(concurrent_sinks_in_one_directory) {
  Sandbox s;
  auto file_entry = [](uint64_t size) {
    wire::Entry e;
    e.kind = wire::Entry::file;
    e.size = size;
    return e.encode();
  };
  wire::TreeSink a(s.dest + "/a", false), b(s.dest + "/b", false);
  BOOST_TEST_REQUIRE(a.entry(file_entry(2)));
  BOOST_TEST_REQUIRE(b.entry(file_entry(2)));
  BOOST_TEST(a.data("aa"));
  BOOST_TEST(b.data("bb"));
  BOOST_TEST(a.finish());
  BOOST_TEST(b.finish());
  BOOST_TEST((s.names(s.dest) == std::vector<std::string>{"a", "b"}));
}
