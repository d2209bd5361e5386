// wire.hpp: the agent protocol (docs/agent.md): length-prefixed frames that carry
// a type and a session id, and the payload encoding. Shared by the guest agent
// (static, no third-party libraries), the supervisor and the exec/cp clients.
// Guest code (tools/kina-vm/guest/): static, libc only, no exceptions (kina-init
// is linked -static -fno-exceptions); the host shares wire.hpp and transfer.hpp.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include "kina/inroot.hpp"

namespace kina::wire {

// Frame: u32 length (little endian) of everything after it, u8 type, u32 session, payload.
inline constexpr size_t kHeader = 4 + 1 + 4;
inline constexpr uint32_t kMaxFrame = 1u << 20;  // payload + 5
inline constexpr size_t kChunk = 60u * 1024;     // data chunk size for streams
// Flow control (docs/agent.md): the agent keeps at most kWindow bytes (whole
// frames, header included) of a session's output frames (stdout/stderr, a
// get's entry/data) unacknowledged; the supervisor grants them back with
// credit frames as its client takes them. The other way, the supervisor passes
// at most about kWindow bytes of a session's stdin payloads that the agent has
// not credited back (the agent credits as the command takes them).
inline constexpr size_t kWindow = 512u * 1024;
// The supervisor grants credit in batches of at least this many bytes (or
// whatever is owed when the client has taken everything queued for it).
inline constexpr size_t kCreditBatch = 64u * 1024;
// The supervisor stops reading a client while more than this many bytes wait
// to go to the agent.
inline constexpr size_t kAgentQueueCap = 1u << 20;

enum class Type : uint8_t {
  // client/host -> guest
  exec = 1,         // ExecRequest; starts a session
  stdin_data = 2,   // bytes for the session's stdin
  stdin_close = 3,  // end of stdin
  signal = 4,       // u32 signal number, sent to the session's process group
  resize = 5,       // u16 rows, u16 cols (tty sessions)
  put = 6,          // str destination, str source basename; then entry/data/end frames from the host
  get = 7,          // str source path; the guest answers with entry/data/end frames
  poweroff = 8,     // clean shutdown of the guest
  ping = 9,         // the guest answers hello
  credit = 10,      // u32 bytes; host -> guest: output taken by the client; guest -> host: stdin taken by the command
  // guest -> host
  hello = 20,       // str kernel release, str hostname
  stdout_data = 21,
  stderr_data = 22,
  exit = 23,        // i32 exit status (128+N for signal N)
  error = 24,       // str message; ends the session
  entry = 25,       // a file in a transfer (both directions): see Entry
  data = 26,        // file content bytes following an entry
  end = 27,         // end of a transfer
  // supervisor -> client
  not_ready = 40,   // str reason: the guest agent is not (yet) answering
};

struct Frame {
  Type type{};
  uint32_t session = 0;
  std::string payload;
};

class Encoder {
 public:
  Encoder& u8(uint8_t v) { out_.push_back(static_cast<char>(v)); return *this; }
  Encoder& u16(uint16_t v) { return raw(v, 2); }
  Encoder& u32(uint32_t v) { return raw(v, 4); }
  Encoder& i32(int32_t v) { return raw(static_cast<uint32_t>(v), 4); }
  Encoder& u64(uint64_t v) { return raw(v, 8); }
  Encoder& str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
    return *this;
  }
  Encoder& strs(const std::vector<std::string>& v) {
    u32(static_cast<uint32_t>(v.size()));
    for (const auto& s : v) str(s);
    return *this;
  }
  std::string take() { return std::move(out_); }

 private:
  Encoder& raw(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }
  std::string out_;
};

// Reads a payload; any read past the end sets failed() and returns zeros.
class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}
  uint8_t u8() { return static_cast<uint8_t>(raw(1)); }
  uint16_t u16() { return static_cast<uint16_t>(raw(2)); }
  uint32_t u32() { return static_cast<uint32_t>(raw(4)); }
  int32_t i32() { return static_cast<int32_t>(static_cast<uint32_t>(raw(4))); }
  uint64_t u64() { return raw(8); }
  std::string str() {
    uint32_t n = u32();
    if (failed_ || n > in_.size() - pos_) {
      failed_ = true;
      return {};
    }
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::vector<std::string> strs() {
    uint32_t n = u32();
    std::vector<std::string> v;
    for (uint32_t i = 0; i < n && !failed_; ++i) v.push_back(str());
    return v;
  }
  bool failed() const { return failed_; }

 private:
  uint64_t raw(int n) {
    if (failed_ || in_.size() - pos_ < static_cast<size_t>(n)) {
      failed_ = true;
      return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
    pos_ += static_cast<size_t>(n);
    return v;
  }
  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

inline std::string encode(Type t, uint32_t session, std::string_view payload) {
  std::string out;
  uint32_t len = static_cast<uint32_t>(payload.size() + 5);
  out.reserve(kHeader + payload.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  out.push_back(static_cast<char>(t));
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((session >> (8 * i)) & 0xff));
  out.append(payload);
  return out;
}

// Accumulates bytes and yields whole frames. A frame longer than kMaxFrame is
// a protocol error (bad() becomes true; the connection must be dropped).
class FrameBuffer {
 public:
  void append(const char* p, size_t n) { buf_.append(p, n); }
  std::optional<Frame> next() {
    if (bad_ || buf_.size() - pos_ < 4) return std::nullopt;
    uint32_t len = 0;
    for (int i = 0; i < 4; ++i) len |= static_cast<uint32_t>(static_cast<unsigned char>(buf_[pos_ + i])) << (8 * i);
    if (len < 5 || len > kMaxFrame) {
      bad_ = true;
      return std::nullopt;
    }
    if (buf_.size() - pos_ < 4 + static_cast<size_t>(len)) return std::nullopt;
    Frame f;
    f.type = static_cast<Type>(static_cast<unsigned char>(buf_[pos_ + 4]));
    for (int i = 0; i < 4; ++i)
      f.session |= static_cast<uint32_t>(static_cast<unsigned char>(buf_[pos_ + 5 + i])) << (8 * i);
    f.payload = buf_.substr(pos_ + kHeader, len - 5);
    pos_ += 4 + len;
    if (pos_ > 65536 && pos_ * 2 > buf_.size()) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    return f;
  }
  bool bad() const { return bad_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
  bool bad_ = false;
};

// Blocking write of a whole buffer; false on error (errno set).
inline bool write_fully(int fd, std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

struct ExecRequest {
  bool tty = false;
  uint16_t rows = 24, cols = 80;
  std::string cwd, user;
  std::vector<std::string> argv, env;

  std::string encode() const {
    Encoder e;
    e.u32(tty ? 1u : 0u).u16(rows).u16(cols).str(cwd).str(user).strs(argv).strs(env);
    return e.take();
  }
  static std::optional<ExecRequest> decode(std::string_view p) {
    Decoder d(p);
    ExecRequest r;
    r.tty = (d.u32() & 1u) != 0;
    r.rows = d.u16();
    r.cols = d.u16();
    r.cwd = d.str();
    r.user = d.str();
    r.argv = d.strs();
    r.env = d.strs();
    if (d.failed() || r.argv.empty()) return std::nullopt;
    return r;
  }
};

// One file of a transfer. path is relative to the transfer's root ("" is the root).
struct Entry {
  enum Kind : uint8_t { file = 1, dir = 2, symlink = 3 };
  Kind kind = file;
  uint32_t mode = 0644, uid = 0, gid = 0;
  uint64_t size = 0;
  std::string path, link;

  std::string encode() const {
    Encoder e;
    e.u8(kind).u32(mode).u32(uid).u32(gid).u64(size).str(path).str(link);
    return e.take();
  }
  static std::optional<Entry> decode(std::string_view p) {
    Decoder d(p);
    Entry x;
    x.kind = static_cast<Kind>(d.u8());
    x.mode = d.u32();
    x.uid = d.u32();
    x.gid = d.u32();
    x.size = d.u64();
    x.path = d.str();
    x.link = d.str();
    if (d.failed() || x.kind < file || x.kind > symlink) return std::nullopt;
    return x;
  }
};

// safe_relative (kina/inroot.hpp): a transfer path must stay inside its root.
using kina::safe_relative;

}  // namespace kina::wire
