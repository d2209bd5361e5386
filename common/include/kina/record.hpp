// record.hpp: the NDJSON record protocol (docs/protocol.md): reader on simdjson,
// writer that fails loudly, the apiVersion check and the filter rule.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <fmt/format.h>
#include <simdjson.h>

#include "kina/error.hpp"
#include "kina/json.hpp"

namespace kina {

inline constexpr std::string_view kApiVersion = "kina/v1alpha1";
inline constexpr size_t kDefaultMaxRecordBytes = 16u << 20;

// One record as read: the exact bytes of its line (for forwarding unchanged),
// its kind, where it came from, and the parsed document.
struct Record {
  std::string raw;
  std::string kind;
  std::string source;
  size_t line = 0;
  std::unique_ptr<simdjson::dom::document> doc;

  simdjson::dom::element root() const { return doc->root(); }
  std::string where() const { return fmt::format("{}:{}", source, line); }

  // Field accessors: absent -> nullopt; present with the wrong type -> error.
  Result<std::optional<std::string>> string_field(std::string_view key) const {
    auto v = root()[key];
    if (v.error() == simdjson::NO_SUCH_FIELD) return std::optional<std::string>{};
    std::string_view s;
    if (v.get(s) != simdjson::SUCCESS) return type_error(key, "a string");
    return std::optional<std::string>{std::string(s)};
  }
  Result<std::string> required_string(std::string_view key) const {
    auto r = string_field(key);
    if (!r) return r.error();
    if (!r->has_value() || (*r)->empty())
      return make_error(Exit::data, fmt::format("record {} ({})", where(), kind),
                        fmt::format("missing field \"{}\"", key));
    return std::move(**r);
  }
  Result<std::optional<int64_t>> int_field(std::string_view key) const {
    auto v = root()[key];
    if (v.error() == simdjson::NO_SUCH_FIELD) return std::optional<int64_t>{};
    int64_t i = 0;
    if (v.get(i) != simdjson::SUCCESS) return type_error(key, "an integer");
    return std::optional<int64_t>{i};
  }

 private:
  Error type_error(std::string_view key, std::string_view want) const {
    return make_error(Exit::data, fmt::format("record {} ({})", where(), kind),
                      fmt::format("field \"{}\" is not {}", key, want));
  }
};

// Where records come from: a file descriptor (stdin) or a string (tests, fuzzing).
class RecordReader {
 public:
  explicit RecordReader(int fd, std::string source = "<stdin>", size_t max_line = kDefaultMaxRecordBytes)
      : fd_(fd), source_(std::move(source)), max_line_(max_line) {}
  static RecordReader from_string(std::string data, std::string source = "<string>",
                                  size_t max_line = kDefaultMaxRecordBytes) {
    RecordReader r(-1, std::move(source), max_line);
    r.buf_ = std::move(data);
    r.eof_ = true;
    return r;
  }

  // The next record, nullopt at the end of the stream, or an error naming the
  // line (and byte position for JSON errors). Blank lines are skipped.
  Result<std::optional<Record>> next() {
    for (;;) {
      auto line = next_line();
      if (!line) return line.error();
      if (!line->has_value()) return std::optional<Record>{};
      std::string& text = **line;
      if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
      return parse(std::move(text));
    }
  }

  size_t line_number() const { return line_; }
  const std::string& source() const { return source_; }

 private:
  Result<std::optional<std::string>> next_line() {
    for (;;) {
      size_t nl = buf_.find('\n', scan_);
      if (nl != std::string::npos) {
        if (nl - pos_ > max_line_) return too_long();
        std::string line = buf_.substr(pos_, nl - pos_);
        pos_ = scan_ = nl + 1;
        ++line_;
        compact();
        return std::optional<std::string>{std::move(line)};
      }
      scan_ = buf_.size();
      if (buf_.size() - pos_ > max_line_) return too_long();
      if (eof_) {
        if (pos_ == buf_.size()) return std::optional<std::string>{};
        std::string line = buf_.substr(pos_);  // last line without '\n'
        pos_ = scan_ = buf_.size();
        ++line_;
        return std::optional<std::string>{std::move(line)};
      }
      auto st = fill();
      if (!st) return st.error();
    }
  }

  Status fill() {
    char chunk[65536];
    for (;;) {
      ssize_t n = ::read(fd_, chunk, sizeof chunk);
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error(fmt::format("reading records from {}", source_), errno, Exit::io);
      }
      if (n == 0) eof_ = true;
      buf_.append(chunk, static_cast<size_t>(n));
      return {};
    }
  }

  void compact() {
    if (pos_ > (1u << 20) && pos_ * 2 > buf_.size()) {
      buf_.erase(0, pos_);
      scan_ -= pos_;
      pos_ = 0;
    }
  }

  Error too_long() const {
    return make_error(Exit::data, fmt::format("reading records from {}", source_),
                      fmt::format("line {} is longer than {} bytes", line_ + 1, max_line_));
  }

  Result<std::optional<Record>> parse(std::string text) {
    Record rec;
    rec.source = source_;
    rec.line = line_;
    rec.doc = std::make_unique<simdjson::dom::document>();
    auto where = fmt::format("{}:{}", source_, line_);
    simdjson::dom::element root;
    auto err = parser_.parse_into_document(*rec.doc, text.data(), text.size()).get(root);
    if (err != simdjson::SUCCESS) {
      return make_error(Exit::data, fmt::format("reading record at {}", where),
                        fmt::format("invalid JSON: {}", simdjson::error_message(err)));
    }
    if (!root.is_object())
      return make_error(Exit::data, fmt::format("reading record at {}", where), "a record must be a JSON object");
    std::string_view api, kind;
    if (root["apiVersion"].get(api) != simdjson::SUCCESS)
      return make_error(Exit::data, fmt::format("reading record at {}", where),
                        "missing string field \"apiVersion\"");
    if (api != kApiVersion)
      return make_error(Exit::data, fmt::format("reading record at {}", where),
                        fmt::format("unsupported apiVersion \"{}\" (this tool reads {})", api, kApiVersion));
    if (root["kind"].get(kind) != simdjson::SUCCESS || kind.empty())
      return make_error(Exit::data, fmt::format("reading record at {}", where), "missing string field \"kind\"");
    rec.kind = std::string(kind);
    rec.raw = std::move(text);
    return std::optional<Record>{std::move(rec)};
  }

  int fd_;
  std::string source_;
  size_t max_line_;
  std::string buf_;
  size_t pos_ = 0, scan_ = 0, line_ = 0;
  bool eof_ = false;
  simdjson::dom::parser parser_;
};

// Writes one record per line and flushes it (one write(2) per record). A
// failed write (closed pipe, full disk) is an Exit::io error, never silent.
class RecordWriter {
 public:
  explicit RecordWriter(int fd = 1, std::string sink = "stdout") : fd_(fd), sink_(std::move(sink)) {}

  Status write_line(std::string_view json) {
    std::string line;
    line.reserve(json.size() + 1);
    line.append(json);
    line += '\n';
    size_t off = 0;
    while (off < line.size()) {
      ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        return os_error(fmt::format("writing a record to {}", sink_), errno, Exit::io);
      }
      off += static_cast<size_t>(n);
    }
    ++written_;
    return {};
  }
  // The filter rule: unconsumed records go on unchanged, byte for byte.
  Status forward(const Record& r) { return write_line(r.raw); }

  size_t written() const { return written_; }

 private:
  int fd_;
  std::string sink_;
  size_t written_ = 0;
};

// The filter rule in one place: reads every record from `in`; `consume(rec)`
// returns true when it took the record, false to have it forwarded to `out`
// unchanged (an error stops the stream).
template <class Fn>
Status filter_records(RecordReader& in, RecordWriter& out, Fn&& consume) {
  for (;;) {
    auto r = in.next();
    if (!r) return r.error();
    if (!r->has_value()) return {};
    Result<bool> took = consume(**r);
    if (!took) return took.error();
    if (!*took)
      if (auto st = out.forward(**r); !st) return st;
  }
}

// Starts a record: {"apiVersion":"kina/v1alpha1","kind":KIND, ... (caller adds
// fields and calls end_object()).
inline json::Writer begin_record(std::string_view kind) {
  json::Writer w;
  w.begin_object().field("apiVersion", kApiVersion).field("kind", kind);
  return w;
}

// True when stdin should be read for records (it is not a terminal).
inline bool stdin_has_records() { return ::isatty(0) == 0; }

}  // namespace kina
