// acl.hpp: POSIX ACLs from a layer, in the kernel's xattr form (system.posix_acl_access/_default): checked when a layer carries them as SCHILY.xattr.system.posix_acl_*, built from libarchive's ACL entries when GNU tar stored them as SCHILY.acl.*.
//
// The xattr form (linux/posix_acl_xattr.h): a little-endian u32 version 2,
// then 8-byte entries {u16 tag, u16 perm, u32 id}, sorted by tag, user and
// group entries by id; exactly one USER_OBJ, GROUP_OBJ and OTHER, a MASK
// when there is a named USER or GROUP. Debian's systemd root has such ACLs
// on /var/log/journal (group adm and systemd-journal may read the journal).
#pragma once

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace kina::image {

inline constexpr std::string_view kAclAccess = "system.posix_acl_access";
inline constexpr std::string_view kAclDefault = "system.posix_acl_default";

namespace acl {

inline constexpr uint32_t kVersion = 2;
enum Tag : uint16_t { user_obj = 0x01, user = 0x02, group_obj = 0x04, group = 0x08, mask = 0x10, other = 0x20 };
inline constexpr uint32_t kUndefinedId = 0xffffffffu;
inline constexpr size_t kMaxEntries = 8190;  // what fits in a 64 KiB xattr value

struct Entry {
  uint16_t tag;
  uint16_t perm;
  uint32_t id;
};

inline uint32_t get_le(std::string_view v, size_t off, size_t n) {
  uint32_t x = 0;
  for (size_t i = 0; i < n; ++i) x |= static_cast<uint32_t>(static_cast<unsigned char>(v[off + i])) << (8 * i);
  return x;
}

// Why `entries` is not a valid ACL ("" when it is). An empty list is valid
// only as a default ACL (it means none).
inline std::string check(const std::vector<Entry>& entries) {
  if (entries.empty()) return "";
  if (entries.size() > kMaxEntries) return fmt::format("more than {} entries", kMaxEntries);
  int objs = 0, masks = 0, named = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    switch (e.tag) {
      case user_obj:
      case group_obj:
      case other: ++objs; break;
      case mask: ++masks; break;
      case user:
      case group: ++named; break;
      default: return fmt::format("entry {} has the unknown tag 0x{:x}", i, e.tag);
    }
    if (e.perm & ~7u) return fmt::format("entry {} has the invalid permissions 0{:o}", i, e.perm);
    if (i > 0) {
      const Entry& p = entries[i - 1];
      if (e.tag < p.tag || (e.tag == p.tag && !((e.tag == user || e.tag == group) && e.id > p.id)))
        return fmt::format("entry {} is out of order or repeated", i);
    }
  }
  if (objs != 3) return "it needs exactly one owner, owning group and other entry";
  if (named > 0 && masks == 0) return "named user or group entries without a mask entry";
  return "";
}

// Parses and checks the xattr form; the entries, or why it is invalid.
inline std::optional<std::vector<Entry>> parse(std::string_view v, std::string& why) {
  if (v.size() < 4 || (v.size() - 4) % 8 != 0) {
    why = fmt::format("{} bytes is not a 4-byte header and 8-byte entries", v.size());
    return std::nullopt;
  }
  if (uint32_t ver = get_le(v, 0, 4); ver != kVersion) {
    why = fmt::format("version {} (expected {})", ver, kVersion);
    return std::nullopt;
  }
  std::vector<Entry> out;
  for (size_t off = 4; off < v.size(); off += 8)
    out.push_back({static_cast<uint16_t>(get_le(v, off, 2)), static_cast<uint16_t>(get_le(v, off + 2, 2)), get_le(v, off + 4, 4)});
  why = check(out);
  if (!why.empty()) return std::nullopt;
  return out;
}

inline std::string encode(const std::vector<Entry>& entries) {
  std::string out;
  auto put = [&](uint32_t x, size_t n) {
    for (size_t i = 0; i < n; ++i) out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
  };
  put(kVersion, 4);
  for (const auto& e : entries) {
    put(e.tag, 2);
    put(e.perm, 2);
    put(e.id, 4);
  }
  return out;
}

// An ACL as libarchive read it (GNU tar's SCHILY.acl.* text): entries, and
// the names of named entries that came without a numeric id (GNU tar writes
// "group:adm:r-x"), to be looked up in the image's own /etc/passwd and
// /etc/group (never the host's).
struct FromArchive {
  std::vector<Entry> entries;
  std::vector<std::pair<size_t, std::string>> names;  // (index in entries, user or group name)
};

// The ACL of `type` (ARCHIVE_ENTRY_ACL_TYPE_ACCESS or _DEFAULT) that
// libarchive read from the entry: nullopt with why "" when there is none (an
// access ACL of only the owner, group and other entries is the mode, and is
// none too), nullopt with why when it is not a POSIX.1e ACL.
inline std::optional<FromArchive> from_archive(archive_entry* e, int type, std::string& why) {
  why.clear();
  if (archive_entry_acl_reset(e, type) <= 0) return std::nullopt;
  FromArchive out;
  bool extended = false;
  int t = 0, permset = 0, tag = 0, qual = 0;
  const char* name = nullptr;
  while (archive_entry_acl_next(e, type, &t, &permset, &tag, &qual, &name) == ARCHIVE_OK) {
    Entry x{0, static_cast<uint16_t>(permset & 7), kUndefinedId};
    switch (tag) {
      case ARCHIVE_ENTRY_ACL_USER_OBJ: x.tag = user_obj; break;
      case ARCHIVE_ENTRY_ACL_GROUP_OBJ: x.tag = group_obj; break;
      case ARCHIVE_ENTRY_ACL_OTHER: x.tag = other; break;
      case ARCHIVE_ENTRY_ACL_MASK: x.tag = mask, extended = true; break;
      case ARCHIVE_ENTRY_ACL_USER: x.tag = user, extended = true; break;
      case ARCHIVE_ENTRY_ACL_GROUP: x.tag = group, extended = true; break;
      default:
        why = fmt::format("an ACL entry with the tag {} (not POSIX.1e)", tag);
        return std::nullopt;
    }
    if (x.tag == user || x.tag == group) {
      if (qual >= 0) {
        x.id = static_cast<uint32_t>(qual);
      } else if (name && *name) {
        out.names.emplace_back(out.entries.size(), name);
      } else {
        why = "a named ACL entry with neither an id nor a name";
        return std::nullopt;
      }
    }
    out.entries.push_back(x);
  }
  if (type == ARCHIVE_ENTRY_ACL_TYPE_ACCESS && !extended) return std::nullopt;
  return out;
}

// Sorted, checked and in xattr form; nullopt with why when invalid.
inline std::optional<std::string> finish(std::vector<Entry> entries, std::string& why) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.tag != b.tag ? a.tag < b.tag : a.id < b.id;
  });
  why = check(entries);
  if (!why.empty()) return std::nullopt;
  return encode(entries);
}

// Names to ids from an /etc/passwd or /etc/group text (name:x:id:...).
inline std::vector<std::pair<std::string, uint32_t>> parse_id_file(std::string_view text) {
  std::vector<std::pair<std::string, uint32_t>> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(start, nl - start);
    start = nl + 1;
    size_t c1 = line.find(':');
    size_t c2 = c1 == std::string_view::npos ? c1 : line.find(':', c1 + 1);
    if (c2 == std::string_view::npos || c1 == 0) continue;
    std::string_view idf = line.substr(c2 + 1, line.find(':', c2 + 1) - c2 - 1);
    uint64_t id = 0;
    bool ok = !idf.empty() && idf.size() <= 10;
    for (char ch : idf) ok = ok && ch >= '0' && ch <= '9', id = id * 10 + static_cast<uint64_t>(ch - '0');
    if (ok && id < kUndefinedId) out.emplace_back(std::string(line.substr(0, c1)), static_cast<uint32_t>(id));
  }
  return out;
}

}  // namespace acl
}  // namespace kina::image
