// store.hpp: the content-addressed image store: blobs/sha256/<hex> (verified
// before use) and index.json (reference -> digest), updated under a lock.
#pragma once

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <simdjson.h>

#include "digest.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/interrupt.hpp"
#include "kina/json.hpp"
#include "kina/lock.hpp"
#include "kina/record.hpp"
#include "temp.hpp"

namespace kina::image {

struct IndexEntry {
  std::string digest;    // what the reference resolved to (manifest or index)
  std::string manifest;  // the platform manifest chosen from it
  std::string platform;
};

class Store {
 public:
  // --store DIR, else $KINA_HOME/images. `intr` (optional) removes the
  // store's temporaries when a signal ends the command.
  static Result<Store> open(const std::string& dir, const Interrupts* intr = nullptr) {
    Store s;
    s.intr_ = intr;
    if (!dir.empty()) {
      s.root_ = fsys::absolute(dir);
    } else {
      auto home = kina_home();
      if (!home) return home.error();
      s.root_ = *home / "images";
    }
    for (const auto& sub : {s.root_, s.root_ / "blobs" / "sha256", s.root_ / "ingest"})
      if (auto st = ensure_dir(sub, 0700); !st) return st.error();
    return s;
  }

  const fsys::path& root() const { return root_; }
  const Interrupts* interrupts() const { return intr_; }
  fsys::path blob_path(const Digest& d) const { return root_ / "blobs" / "sha256" / d.hex(); }
  fsys::path ingest_path(const Digest& d) const { return root_ / "ingest" / (d.hex() + ".partial"); }

  // True when the blob is present with the expected size (-1: any size).
  bool has_blob(const Digest& d, int64_t size = -1) const {
    struct stat sb {};
    if (::stat(blob_path(d).c_str(), &sb) != 0 || !S_ISREG(sb.st_mode)) return false;
    return size < 0 || sb.st_size == size;
  }

  // Reads a small blob (manifest, config) and checks its digest.
  Result<std::string> read_blob(const Digest& d, size_t max_bytes) const {
    auto data = read_file(blob_path(d), max_bytes);
    if (!data) {
      if (data.error().exit == Exit::no_input)
        return make_error(Exit::no_input, fmt::format("blob {}", d.str()), "not in the store", "pull or import the image first");
      return data.error();
    }
    if (!(Digest::of_data(*data) == d))
      return make_error(Exit::data, fmt::format("blob {} in {}", d.str(), root_.string()), "content does not match its digest (corrupt store)",
                        "remove it with kina-image rm and pull again");
    return data;
  }

  // Stores bytes whose digest we compute (or check against `expect`),
  // through a BlobWriter.
  Result<Digest> put_blob(std::string_view data, const Digest* expect = nullptr) const;

  // Moves a fully written and verified file into the store.
  Status commit_file(const fsys::path& tmp, const Digest& d) const {
    if (::rename(tmp.c_str(), blob_path(d).c_str()) != 0)
      return os_error(fmt::format("storing blob {}", d.str()), errno, Exit::cant_create);
    return fsync_dir(blob_path(d).parent_path());
  }

  Result<FileLock> lock() const { return FileLock::acquire(root_ / "lock", std::chrono::seconds(30), "kina-image"); }

  // Blob collection against blobs being added: pulls and imports hold this
  // shared while they write blobs not yet tagged; rm's collection holds it
  // exclusive. flock, so a crashed holder releases it.
  class GcGuard {
   public:
    GcGuard() = default;
    explicit GcGuard(UniqueFd fd) : fd_(std::move(fd)) {}
   private:
    UniqueFd fd_;
  };
  Result<GcGuard> gc_guard(bool exclusive) const {
    fsys::path p = root_ / "gc.lock";
    UniqueFd fd(::open(p.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid()) return os_error(fmt::format("opening {}", p.string()), errno, Exit::cant_create);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
    while (::flock(fd.get(), (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
      if (errno != EWOULDBLOCK && errno != EINTR) return os_error(fmt::format("locking {}", p.string()));
      if (std::chrono::steady_clock::now() > deadline)
        return make_error(Exit::temp_fail, fmt::format("lock {}", p.string()),
                          exclusive ? "pulls or imports still running (waited 10 min)" : "a blob collection is running (waited 10 min)");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return GcGuard(std::move(fd));
  }

  // The gc lock exclusive, if nobody holds it now (no wait).
  std::optional<GcGuard> try_gc_guard_exclusive() const {
    UniqueFd fd(::open((root_ / "gc.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd.valid() || ::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) return std::nullopt;
    return GcGuard(std::move(fd));
  }

  // index.json; a missing file is an empty index.
  Result<std::map<std::string, IndexEntry>> load_index() const {
    std::map<std::string, IndexEntry> out;
    auto data = read_file(root_ / "index.json", 64u << 20);
    if (!data) {
      if (data.error().exit == Exit::no_input) return out;
      return data.error();
    }
    auto bad = [&](std::string why) { return make_error(Exit::data, fmt::format("reading {}", (root_ / "index.json").string()), why); };
    simdjson::dom::parser p;
    simdjson::dom::object o, refs;
    if (p.parse(*data).get(o) != simdjson::SUCCESS || o["refs"].get(refs) != simdjson::SUCCESS)
      return bad("not a kina image index (expected an object with \"refs\")");
    for (auto [k, v] : refs) {
      IndexEntry e;
      std::string_view s;
      if (v["digest"].get(s) != simdjson::SUCCESS || !Digest::valid(s)) return bad(fmt::format("entry {} has no valid digest", shown(k)));
      e.digest = std::string(s);
      if (v["manifest"].get(s) == simdjson::SUCCESS && Digest::valid(s)) e.manifest = std::string(s);
      if (v["platform"].get(s) == simdjson::SUCCESS) e.platform = std::string(s);
      out.emplace(std::string(k), e);
    }
    return out;
  }

  // Writes index.json atomically; the caller holds lock(), so the temporary
  // of an earlier writer that was killed is stale and goes.
  Status save_index(const std::map<std::string, IndexEntry>& idx) const {
    sweep_stale(root_, ".index.json.tmp.");
    json::Writer w;
    w.begin_object().field("apiVersion", kApiVersion).key("refs").begin_object();
    for (const auto& [ref, e] : idx) {
      w.key(ref).begin_object().field("digest", e.digest);
      if (!e.manifest.empty()) w.field("manifest", e.manifest);
      if (!e.platform.empty()) w.field("platform", e.platform);
      w.end_object();
    }
    w.end_object().end_object();
    std::string text = w.take() + "\n";
    return write_file_atomic(root_ / "index.json", text, 0600);
  }

  // Sets ref -> entry under the lock.
  Status tag(const std::string& ref, const IndexEntry& e) const {
    auto l = lock();
    if (!l) return l.error();
    auto idx = load_index();
    if (!idx) return idx.error();
    (*idx)[ref] = e;
    return save_index(*idx);
  }

  // Removes what killed pulls and imports left in ingest/ (files no live
  // process holds locked).
  size_t sweep_ingest() const { return sweep_stale(root_ / "ingest", ""); }

 private:
  fsys::path root_;
  const Interrupts* intr_ = nullptr;
};

// A blob being written into the store's ingest directory, hashed as it goes:
// either a locked temporary file of its own, or a file inside a locked
// temporary directory (an import of many members: its descriptor is closed
// once written, so members never hold one descriptor each).
class BlobWriter {
 public:
  static Result<BlobWriter> create(const Store& store) {
    auto t = Temp::make(store.root() / "ingest", "import.", false, store.interrupts());
    if (!t) return t.error();
    BlobWriter w;
    w.own_ = std::move(*t);
    w.fd_ = w.own_.fd();
    return w;
  }
  static Result<BlobWriter> create_in(const Temp& dir, std::string name) {
    BlobWriter w;
    w.dirfd_ = dir.fd();
    w.name_ = std::move(name);
    w.in_dir_.reset(::openat(w.dirfd_, w.name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!w.in_dir_.valid()) return os_error(fmt::format("creating a file in {}", dir.path().string()), errno, Exit::cant_create);
    w.fd_ = w.in_dir_.get();
    return w;
  }
  BlobWriter() = default;
  BlobWriter(BlobWriter&&) = default;
  BlobWriter& operator=(BlobWriter&&) = default;
  Status write(const void* p, size_t n) {
    hash_->update(p, n);
    size_ += n;
    return write_all(fd_, std::string_view(static_cast<const char*>(p), n), "writing into the store");
  }
  // Everything written: synced, and (inside a directory) its descriptor closed.
  Status finish() {
    if (finished_) return {};
    if (::fsync(fd_) != 0) return os_error("syncing a blob", errno, Exit::io);
    if (in_dir_.valid()) in_dir_.reset();
    finished_ = true;
    return {};
  }
  Digest digest() {
    if (!done_) {
      digest_ = Digest::of(hash_->finish());
      done_ = true;
    }
    return digest_;
  }
  uint64_t size() const { return size_; }
  // Verifies and moves the blob into blobs/sha256/.
  Status commit(const Store& store, const Digest* expect, const std::string& what) {
    Digest d = digest();
    if (expect && !(d == *expect))
      return make_error(Exit::data, what, fmt::format("content has digest {}, expected {}", d.str(), expect->str()));
    if (auto st = finish(); !st) return st;
    if (store.has_blob(d, static_cast<int64_t>(size_))) return {};
    int rc = own_ ? own_.keep_as(store.blob_path(d), store.interrupts(), true)
                  : ::renameat(dirfd_, name_.c_str(), AT_FDCWD, store.blob_path(d).c_str());
    if (rc != 0) return os_error(fmt::format("storing blob {}", d.str()), errno, Exit::cant_create);
    return fsync_dir(store.blob_path(d).parent_path());
  }

 private:
  Temp own_;
  int dirfd_ = -1;
  std::string name_;
  UniqueFd in_dir_;
  int fd_ = -1;
  std::unique_ptr<Sha256> hash_ = std::make_unique<Sha256>();
  uint64_t size_ = 0;
  Digest digest_;
  bool done_ = false, finished_ = false;
};

inline Result<Digest> Store::put_blob(std::string_view data, const Digest* expect) const {
  Digest d = Digest::of_data(data);
  if (expect && !(d == *expect))
    return make_error(Exit::data, fmt::format("blob {}", expect->str()), fmt::format("content has digest {}", d.str()));
  if (has_blob(d, static_cast<int64_t>(data.size()))) return d;
  auto w = BlobWriter::create(*this);
  if (!w) return w.error();
  if (auto st = w->write(data.data(), data.size()); !st) return st.error();
  if (auto st = w->commit(*this, &d, fmt::format("blob {}", d.str())); !st) return st.error();
  return d;
}

}  // namespace kina::image
