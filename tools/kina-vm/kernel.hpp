// kernel.hpp: the guest kernel (fetched from Debian's archive or given), the
// module dependency order read from each .ko's modinfo, and the initramfs kina
// builds around kina-init (newc cpio). Its modules disk is in disks.hpp.
#pragma once

#include <elf.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "kina/diag.hpp"
#include "kina/error.hpp"
#include "kina/fs.hpp"
#include "kina/home.hpp"
#include "kina/lock.hpp"
#include "kina/process.hpp"
#include "kina/record.hpp"
#include "kina/validate.hpp"

namespace kina::vm {

namespace fsys = std::filesystem;

struct Kernel {
  std::string version;
  fsys::path path;     // the bzImage
  fsys::path modules;  // lib/modules/<version>
  std::string source;  // "debian:<package> <version>" or "local"

  std::string record() const {
    auto w = begin_record("Kernel");
    w.field("name", version).field("version", version).field("path", path.string()).field("modules", modules.string());
    w.field("source", source);
    w.end_object();
    return w.take();
  }
};

inline Result<fsys::path> kernel_root() { return kina_subdir("kernel"); }

// The kernel that `kina-vm kernel` registered last.
inline Result<Kernel> load_kernel() {
  auto root = kernel_root();
  if (!root) return root.error();
  auto text = read_file(*root / "kernel.json", 1 << 16);
  if (!text) {
    if (text.error().exit == Exit::no_input)
      return make_error(Exit::no_input, "no kernel", fmt::format("{} does not exist", (*root / "kernel.json").string()),
                        "get one with: kina-vm kernel --fetch (or --kernel PATH --modules DIR)");
    return text.error();
  }
  auto reader = RecordReader::from_string(*text, (*root / "kernel.json").string());
  auto rec = reader.next();
  if (!rec) return rec.error();
  if (!rec->has_value() || (**rec).kind != "Kernel")
    return make_error(Exit::data, (*root / "kernel.json").string(), "not a Kernel record");
  const Record& r = **rec;
  Kernel k;
  for (auto [key, dst] : {std::pair{"version", &k.version}, {"source", &k.source}}) {
    auto v = r.required_string(key);
    if (!v) return v.error();
    *dst = *v;
  }
  auto p = r.required_string("path");
  if (!p) return p.error();
  k.path = *p;
  auto m = r.required_string("modules");
  if (!m) return m.error();
  k.modules = *m;
  if (!fsys::is_regular_file(k.path))
    return make_error(Exit::no_input, "kernel", fmt::format("{} does not exist", k.path.string()),
                      "get one with: kina-vm kernel --fetch");
  return k;
}

inline Status save_kernel(const Kernel& k) {
  auto root = kernel_root();
  if (!root) return root.error();
  return write_file_atomic(*root / "kernel.json", k.record() + "\n", 0644);
}

// --- modinfo ---------------------------------------------------------------------------

// The bytes of a module, decompressed when it is .ko.xz / .ko.zst / .ko.gz.
inline Result<std::string> read_module(const fsys::path& p) {
  std::string name = p.filename().string();
  auto ends = [&](std::string_view s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  std::vector<std::string> argv;
  if (ends(".ko.xz")) argv = {"xz", "-dc", p.string()};
  else if (ends(".ko.zst")) argv = {"zstd", "-dcq", p.string()};
  else if (ends(".ko.gz")) argv = {"gzip", "-dc", p.string()};
  else return read_file(p, 64u << 20);
  ProcessSpec spec;
  spec.argv = argv;
  spec.max_output = 64u << 20;
  spec.timeout = std::chrono::seconds(60);
  auto r = run_process(spec);
  if (!r) return r.error();
  if (!r->success())
    return make_error(Exit::data, fmt::format("decompressing {}", p.string()), r->describe() + ": " + r->err);
  return std::move(r->out);
}

// The "depends=" list from the .modinfo section of an ELF64 module.
inline Result<std::vector<std::string>> module_depends(std::string_view elf, const std::string& what) {
  auto bad = [&](std::string why) { return make_error(Exit::data, fmt::format("reading module {}", what), why); };
  if (elf.size() < sizeof(Elf64_Ehdr) || elf.substr(0, 4) != std::string_view(ELFMAG, 4) || elf[EI_CLASS] != ELFCLASS64)
    return bad("not an ELF64 file");
  Elf64_Ehdr eh;
  std::memcpy(&eh, elf.data(), sizeof eh);
  if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shoff > elf.size() ||
      (elf.size() - eh.e_shoff) / sizeof(Elf64_Shdr) < eh.e_shnum || eh.e_shstrndx >= eh.e_shnum)
    return bad("bad section table");
  auto shdr = [&](size_t i) {
    Elf64_Shdr s;
    std::memcpy(&s, elf.data() + eh.e_shoff + i * sizeof(Elf64_Shdr), sizeof s);
    return s;
  };
  Elf64_Shdr strtab = shdr(eh.e_shstrndx);
  if (strtab.sh_offset > elf.size() || strtab.sh_size > elf.size() - strtab.sh_offset) return bad("bad string table");
  std::string_view names = elf.substr(strtab.sh_offset, strtab.sh_size);
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    Elf64_Shdr s = shdr(i);
    if (s.sh_name >= names.size()) continue;
    std::string_view n = names.substr(s.sh_name);
    n = n.substr(0, n.find('\0'));
    if (n != ".modinfo") continue;
    if (s.sh_offset > elf.size() || s.sh_size > elf.size() - s.sh_offset) return bad("bad .modinfo section");
    std::string_view info = elf.substr(s.sh_offset, s.sh_size);
    std::vector<std::string> deps;
    size_t pos = 0;
    while (pos < info.size()) {
      size_t end = info.find('\0', pos);
      if (end == std::string_view::npos) end = info.size();
      std::string_view kv = info.substr(pos, end - pos);
      pos = end + 1;
      if (kv.rfind("depends=", 0) != 0) continue;
      kv.remove_prefix(8);
      size_t p = 0;
      while (p < kv.size()) {
        size_t c = kv.find(',', p);
        if (c == std::string_view::npos) c = kv.size();
        if (c > p) deps.emplace_back(kv.substr(p, c - p));
        p = c + 1;
      }
    }
    return deps;
  }
  return bad("no .modinfo section");
}

// Module names compare with '-' and '_' equal (the kernel's rule).
inline std::string module_key(std::string_view name) {
  std::string k(name.substr(0, name.find(".ko")));
  std::replace(k.begin(), k.end(), '-', '_');
  return k;
}

// Every module file under DIR by key.
inline std::map<std::string, fsys::path> index_modules(const fsys::path& dir) {
  std::map<std::string, fsys::path> out;
  std::error_code ec;
  for (auto it = fsys::recursive_directory_iterator(dir, ec); !ec && it != fsys::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    std::string n = it->path().filename().string();
    if (n.find(".ko") == std::string::npos) continue;
    out.emplace(module_key(n), it->path());
  }
  return out;
}

struct Module {
  std::string key;
  fsys::path path;
  std::string data;  // decompressed
};

// WANTED and everything they depend on, dependencies first. Modules absent
// from the tree are taken to be built in.
inline Result<std::vector<Module>> resolve_modules(const fsys::path& dir, const std::vector<std::string>& wanted) {
  auto index = index_modules(dir);
  std::vector<Module> order;
  std::set<std::string> done, visiting;
  std::function<Status(const std::string&)> visit = [&](const std::string& name) -> Status {
    std::string key = module_key(name);
    if (done.count(key)) return {};
    if (visiting.count(key)) return make_error(Exit::data, "resolving modules", "dependency cycle at " + key);
    auto it = index.find(key);
    if (it == index.end()) return {};
    visiting.insert(key);
    auto data = read_module(it->second);
    if (!data) return data.error();
    auto deps = module_depends(*data, it->second.string());
    if (!deps) return deps.error();
    for (const auto& d : *deps)
      if (auto st = visit(d); !st) return st;
    visiting.erase(key);
    done.insert(key);
    order.push_back(Module{key, it->second, std::move(*data)});
    return {};
  };
  for (const auto& w : wanted)
    if (auto st = visit(w); !st) return st.error();
  return order;
}

// What the guest needs before its root is mounted.
inline const std::vector<std::string>& boot_modules() {
  static const std::vector<std::string> m = {"virtio_pci", "virtio_blk", "virtio_net", "virtio_console", "virtio-rng"};
  return m;
}

// --- initramfs -----------------------------------------------------------------------------

// The kernel's initramfs format (newc cpio, Documentation/driver-api/
// early-userspace/buffer-format.rst): per entry a "070701" header of 13
// eight-digit hex fields, the NUL-terminated name, the data, each padded to 4
// bytes; a "TRAILER!!!" entry ends it. Written by hand rather than with
// libarchive, so that kina-vm does not load libarchive (and its ten
// libraries) at every start for this one use.
class CpioWriter {
 public:
  explicit CpioWriter(fsys::path out) : path_(std::move(out)) {}

  void dir(const std::string& name) { add(name, S_IFDIR | 0755, {}); }
  void file(const std::string& name, std::string_view data, mode_t mode = 0644) { add(name, S_IFREG | mode, data); }
  void chardev(const std::string& name, unsigned maj, unsigned min) { add(name, S_IFCHR | 0600, {}, maj, min); }

  Status close() {
    add("TRAILER!!!", 0, {});
    if (!error_.empty()) return make_error(Exit::cant_create, fmt::format("writing {}", path_.string()), error_);
    return write_file_atomic(path_, buf_, 0600);
  }

 private:
  void add(const std::string& name, unsigned mode, std::string_view data, unsigned rmaj = 0, unsigned rmin = 0) {
    if (data.size() > 0xffffffffu || name.size() >= 0xffffffffu) {
      error_ = fmt::format("{}: too large for a cpio entry", name);
      return;
    }
    unsigned nlink = (mode & S_IFMT) == S_IFDIR ? 2 : 1;
    buf_ += fmt::format("070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
                        mode == 0 ? 0 : ++ino_, mode, 0, 0, mode == 0 ? 1 : nlink, 0, data.size(), 0, 0, rmaj, rmin,
                        name.size() + 1, 0);
    buf_ += name;
    buf_.push_back('\0');
    pad();
    buf_ += data;
    pad();
  }
  void pad() { buf_.append((4 - buf_.size() % 4) % 4, '\0'); }

  fsys::path path_;
  std::string buf_;
  unsigned ino_ = 0;
  std::string error_;
};

// The initramfs: /init (kina-init), /kina.conf, /modules/order + the modules.
inline Status build_initramfs(const fsys::path& out, const fsys::path& init_binary, const std::vector<Module>& modules,
                              const std::string& config) {
  auto init = read_file(init_binary, 64u << 20);
  if (!init) return init.error();
  CpioWriter w(out);
  for (const char* d : {"dev", "proc", "sys", "newroot", "modules", "run", "tmp"}) w.dir(d);
  w.chardev("dev/console", 5, 1);
  w.file("init", *init, 0755);
  w.file("kina.conf", config);
  std::string order;
  for (const auto& m : modules) {
    w.file("modules/" + m.key + ".ko", m.data);
    order += m.key + ".ko\n";
  }
  w.file("modules/order", order);
  return w.close();
}

// --- fetching --------------------------------------------------------------------------


// `apt-get download` of the versioned package behind linux-image-cloud-amd64
// (kept in $KINA_KERNEL_CACHE when set, so tests download once), unpacked
// with `dpkg-deb -x` into $KINA_HOME/kernel/<version>/. Nothing is installed.
inline Result<Kernel> fetch_kernel(const Interrupts* intr, const std::string& meta = "linux-image-cloud-amd64") {
  if (which("apt-cache").empty() || which("apt-get").empty() || which("dpkg-deb").empty())
    return make_error(Exit::unavailable, "fetching a kernel", "apt-get, apt-cache and dpkg-deb are needed (Debian/Ubuntu)",
                      "or give one: kina-vm kernel --kernel PATH --modules DIR");
  auto root = kernel_root();
  if (!root) return root.error();
  auto lock = FileLock::acquire(*root / "lock", std::chrono::minutes(10), "kina-vm kernel --fetch");
  if (!lock) return lock.error();
  ProcessSpec deps;
  deps.argv = {"apt-cache", "depends", meta};
  auto d = run_checked(deps, "looking up " + meta);
  if (!d) return d.error();
  std::string pkg;
  for (size_t pos = 0; pos < d->out.size();) {
    size_t nl = d->out.find('\n', pos);
    if (nl == std::string::npos) nl = d->out.size();
    std::string line = d->out.substr(pos, nl - pos);
    pos = nl + 1;
    auto at = line.find("Depends: linux-image-");
    if (at != std::string::npos && pkg.empty()) pkg = line.substr(at + 9);
  }
  if (pkg.empty() || pkg.find('/') != std::string::npos)
    return make_error(Exit::unavailable, "fetching a kernel", fmt::format("{} depends on no linux-image package", meta),
                      "run apt-get update");
  std::string version = pkg.substr(std::string("linux-image-").size());
  if (version.empty() || version.find_first_of("/ ") != std::string::npos || version == "..")
    return make_error(Exit::data, "fetching a kernel", "unexpected package name " + shown(pkg));
  fsys::path dest = *root / version;
  Kernel k{version, dest / "vmlinuz", dest / "lib" / "modules" / version, "debian:" + pkg};
  // what a fetch killed with -9 left (an unpack holds about 100 MiB)
  sweep_dead_temps(*root, ".unpack-");
  if (fsys::is_regular_file(k.path) && fsys::is_directory(k.modules)) return k;

  fsys::path cache;
  if (const char* c = std::getenv("KINA_KERNEL_CACHE"); c && *c) cache = c;
  else cache = *root / "debs";
  if (auto st = ensure_dir(cache, 0755); !st) return st.error();
  auto find_deb = [&]() -> fsys::path {
    std::error_code ec;
    for (const auto& e : fsys::directory_iterator(cache, ec))
      if (e.path().filename().string().rfind(pkg + "_", 0) == 0 && e.path().extension() == ".deb") return e.path();
    return {};
  };
  fsys::path deb = find_deb();
  if (deb.empty()) {
    auto clock = FileLock::acquire(cache / ".lock", std::chrono::minutes(10), "kina-vm kernel --fetch");
    if (!clock) return clock.error();
    sweep_dead_temps(cache, ".download-");
    deb = find_deb();
    if (deb.empty()) {
      auto t = ScopedTempDir::make(cache, ".download-", intr);
      if (!t) return t.error();
      const fsys::path& tmp = t->path();
      std::error_code ec;
      ProcessSpec dl;
      dl.argv = {"apt-get", "download", "-q", pkg};
      dl.cwd = tmp.string();
      auto r = run_writing(dl, "downloading " + pkg, tmp);
      if (r) {
        for (const auto& e : fsys::directory_iterator(tmp, ec))
          if (e.path().extension() == ".deb") deb = cache / e.path().filename();
        if (!deb.empty()) fsys::rename(tmp / deb.filename(), deb, ec);
      }
      if (!r) return r.error();
      if (deb.empty() || ec) return make_error(Exit::unavailable, "downloading " + pkg, "apt-get wrote no .deb");
    }
  }
  // Unpacked into .unpack-PID.XXXXXX beside its final place, then renamed:
  // a failed or killed fetch leaves no half kernel under its version.
  auto t = ScopedTempDir::make(*root, ".unpack-", intr);
  if (!t) return t.error();
  const fsys::path& tmp = t->path();
  std::error_code ec;
  ProcessSpec x;
  x.argv = {"dpkg-deb", "-x", deb.string(), tmp.string()};
  if (auto r = run_writing(x, "unpacking " + deb.string(), tmp); !r) return r.error();
  fsys::rename(tmp / "boot" / ("vmlinuz-" + version), tmp / "vmlinuz", ec);
  if (ec) return make_error(Exit::data, "unpacking " + deb.string(), "no boot/vmlinuz-" + version + " inside");
  fsys::remove_all(tmp / "usr", ec);
  if (!which("depmod").empty()) {
    ProcessSpec dm;
    dm.argv = {"depmod", "-b", tmp.string(), version};
    if (auto r = run_writing(dm, "depmod", tmp); !r) return r.error();
  }
  fsys::remove_all(dest, ec);
  if (::rename(tmp.c_str(), dest.c_str()) != 0) return os_error("installing the kernel into " + dest.string(), errno, Exit::cant_create);
  return k;
}

// `kina-vm kernel --fetch` or `--kernel PATH --modules DIR`: the kernel
// fetched or given, checked and saved as the one new machines boot.
inline Result<Kernel> register_kernel(bool fetch, const std::string& kernel_path, const std::string& modules_dir,
                                      const Interrupts* intr = nullptr) {
  Kernel k;
  if (fetch) {
    if (!kernel_path.empty() || !modules_dir.empty())
      return make_error(Exit::usage, "kernel", "--fetch and --kernel/--modules are exclusive");
    auto f = fetch_kernel(intr);
    if (!f) return f.error();
    k = *f;
  } else {
    if (kernel_path.empty() || modules_dir.empty()) return make_error(Exit::usage, "kernel", "--kernel and --modules go together");
    k.path = fsys::absolute(kernel_path);
    k.modules = fsys::absolute(modules_dir).lexically_normal();
    if (k.modules.filename().empty()) k.modules = k.modules.parent_path();
    if (!fsys::is_regular_file(k.path)) return make_error(Exit::no_input, fmt::format("kernel {}", kernel_path), "no such file");
    if (!fsys::is_directory(k.modules / "kernel"))
      return make_error(Exit::no_input, fmt::format("modules {}", modules_dir),
                        "not a lib/modules/<version> directory (no kernel/ inside)");
    k.version = k.modules.filename().string();
    k.source = "local";
  }
  if (auto st = save_kernel(k); !st) return st.error();
  return k;
}

}  // namespace kina::vm
