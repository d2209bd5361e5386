// tar_builder.hpp: tars built in memory for the kina-image unit tests.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace kina::image::test {

// libarchive write callback appending to the std::string given as client data.
inline la_ssize_t append_to_string(archive*, void* ud, const void* buf, size_t n) {
  static_cast<std::string*>(ud)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

// A tar built in memory, entry by entry.
class Tar {
 public:
  Tar& file(const std::string& path, const std::string& data, mode_t mode = 0644) { return add(path, AE_IFREG, mode, data, ""); }
  Tar& dir(const std::string& path, mode_t mode = 0755) { return add(path, AE_IFDIR, mode, "", ""); }
  Tar& symlink(const std::string& path, const std::string& target) { return add(path, AE_IFLNK, 0777, "", target); }
  Tar& hardlink(const std::string& path, const std::string& target) { return add(path, 0, 0644, "", "", target); }
  // A sparse file: `data` is its whole content; only the ranges (offset,
  // length) are stored (GNU sparse in pax), the rest is holes.
  Tar& sparse(const std::string& path, const std::string& data, std::vector<std::pair<int64_t, int64_t>> ranges) {
    add(path, AE_IFREG, 0644, data, "");
    entries_.back().sparse = std::move(ranges);
    return *this;
  }
  // An extended attribute (SCHILY.xattr.NAME) on the last entry.
  Tar& xattr(const std::string& name, const std::string& value) {
    entries_.back().xattrs.emplace_back(name, value);
    return *this;
  }
  // An ACL in libarchive's text form (GNU tar's SCHILY.acl.*) on the last
  // entry; type ARCHIVE_ENTRY_ACL_TYPE_ACCESS or _DEFAULT.
  Tar& acl(int type, const std::string& text) {
    entries_.back().acls.emplace_back(type, text);
    return *this;
  }
  std::string bytes() {
    std::string out;
    archive* a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open(a, &out, nullptr, &append_to_string, nullptr);
    for (auto& e : entries_) {
      archive_entry* ae = archive_entry_new();
      archive_entry_set_pathname(ae, e.path.c_str());
      if (!e.hardlink.empty()) {
        archive_entry_set_hardlink(ae, e.hardlink.c_str());
      } else {
        archive_entry_set_filetype(ae, e.type);
      }
      archive_entry_set_perm(ae, e.mode);
      archive_entry_set_size(ae, static_cast<la_int64_t>(e.data.size()));
      if (!e.target.empty()) archive_entry_set_symlink(ae, e.target.c_str());
      for (const auto& [n, v] : e.xattrs) archive_entry_xattr_add_entry(ae, n.c_str(), v.data(), v.size());
      for (const auto& [t, text] : e.acls) archive_entry_acl_from_text(ae, text.c_str(), t);
      for (const auto& [off, len] : e.sparse) archive_entry_sparse_add_entry(ae, off, len);
      archive_write_header(a, ae);
      if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
      archive_entry_free(ae);
    }
    archive_write_close(a);
    archive_write_free(a);
    return out;
  }

 private:
  struct E {
    std::string path;
    unsigned type;
    mode_t mode;
    std::string data, target, hardlink;
    std::vector<std::pair<std::string, std::string>> xattrs = {};
    std::vector<std::pair<int, std::string>> acls = {};
    std::vector<std::pair<int64_t, int64_t>> sparse = {};
  };
  Tar& add(const std::string& p, unsigned type, mode_t mode, const std::string& data, const std::string& target,
           const std::string& hl = "") {
    entries_.push_back({p, type, mode, data, target, hl});
    return *this;
  }
  std::vector<E> entries_;
};

}  // namespace kina::image::test
