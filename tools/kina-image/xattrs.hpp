// xattrs.hpp: the extended attributes and POSIX ACLs a layer entry carries, checked, in the order to set them (both layer writers: directory and ext4 disk).
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "acl.hpp"
#include "kina/error.hpp"
#include "kina/validate.hpp"

namespace kina::image {

struct EntryXattrs {
  std::vector<std::pair<std::string, std::string>> values;  // name, value (ACLs in the kernel's xattr form)
  // ACLs whose named entries came without ids (GNU tar --acls): set once the
  // layer's /etc/passwd and /etc/group are known (xattr name, ACL).
  std::vector<std::pair<std::string, acl::FromArchive>> pending;
  bool access = false, default_acl = false;  // the entry carries an access / default ACL
};

// SCHILY.xattr.* (user, security incl. security.capability, trusted), and
// POSIX ACLs in the xattr form (SCHILY.xattr.system.posix_acl_*) or
// libarchive's (GNU tar's SCHILY.acl.*), checked (acl.hpp). Other system.*
// names, NFSv4 ACLs, ACLs on symlinks and default ACLs on non-directories are
// refused: bad(why) makes the error.
template <class Bad>
Result<EntryXattrs> entry_xattrs(archive_entry* e, Bad&& bad) {
  EntryXattrs out;
  bool is_dir = archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e);
  bool is_link = archive_entry_filetype(e) == AE_IFLNK;
  auto acl_allowed = [&](std::string_view xn) -> Status {
    if (is_link) return bad(fmt::format("{} on a symlink (symlinks have no ACLs)", xn));
    if (xn == kAclDefault && !is_dir) return bad(fmt::format("{} on an entry that is not a directory", xn));
    return {};
  };
  if (archive_entry_xattr_reset(e) > 0) {
    const char* xname = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
      std::string_view xn = xname ? xname : "";
      if (xn == kAclAccess || xn == kAclDefault) {
        if (auto st = acl_allowed(xn); !st) return st.error();
        std::string why;
        auto entries = acl::parse(std::string_view(static_cast<const char*>(value), size), why);
        if (!entries) return bad(fmt::format("extended attribute {}: not a POSIX ACL: {}", xn, why));
        if (entries->empty()) continue;  // an empty default ACL is none
      } else if (xn.rfind("user.", 0) != 0 && xn.rfind("security.", 0) != 0 && xn.rfind("trusted.", 0) != 0) {
        return bad(fmt::format("extended attribute {} is not in the user, security or trusted namespace, nor a POSIX ACL", shown(xn)));
      }
      out.values.emplace_back(std::string(xn), std::string(static_cast<const char*>(value), value ? size : 0));
      out.access = out.access || xn == kAclAccess;
      out.default_acl = out.default_acl || xn == kAclDefault;
    }
  }
  if (archive_entry_acl_types(e) & ARCHIVE_ENTRY_ACL_TYPE_NFS4) return bad("an NFSv4 ACL (only POSIX ACLs are kept)");
  for (int type : {ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT}) {
    std::string why;
    auto fa = acl::from_archive(e, type, why);
    if (!why.empty()) return bad(fmt::format("invalid ACL: {}", why));
    if (!fa) continue;
    std::string_view xn = type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS ? kAclAccess : kAclDefault;
    if (auto st = acl_allowed(xn); !st) return st.error();
    (type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS ? out.access : out.default_acl) = true;
    if (!fa->names.empty()) {  // ids from the image's /etc/passwd and /etc/group, at the end of the layer
      out.pending.emplace_back(std::string(xn), std::move(*fa));
      continue;
    }
    auto value = acl::finish(std::move(fa->entries), why);
    if (!value) return bad(fmt::format("invalid ACL: {}", why));
    out.values.emplace_back(std::string(xn), std::move(*value));
  }
  return out;
}

// Resolves the names of a pending ACL in the image's /etc/passwd and
// /etc/group texts; the ACL in xattr form, or bad(why).
template <class Bad>
Result<std::string> resolve_pending_acl(acl::FromArchive acl, std::string_view passwd, std::string_view group, Bad&& bad) {
  auto users = acl::parse_id_file(passwd), groups = acl::parse_id_file(group);
  for (const auto& named : acl.names) {
    const auto& i = named.first;
    const auto& n = named.second;  // not a structured binding: clang 14 cannot capture one
    bool is_user = acl.entries[i].tag == acl::user;
    const auto& db = is_user ? users : groups;
    auto it = std::find_if(db.begin(), db.end(), [&](const auto& kv) { return kv.first == n; });
    if (it == db.end())
      return bad(fmt::format("its ACL names the {} {}, which is not in the image's /etc/{}", is_user ? "user" : "group", shown(n),
                             is_user ? "passwd" : "group"));
    acl.entries[i].id = it->second;
  }
  std::string why;
  auto value = acl::finish(std::move(acl.entries), why);
  if (!value) return bad(fmt::format("invalid ACL: {}", why));
  return std::move(*value);
}

}  // namespace kina::image
