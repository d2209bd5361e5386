// archive_reader.hpp: a libarchive reader set up the one way kina reads archives.
#pragma once

#include <archive.h>

#include <memory>
#include <new>

namespace kina::image {

using ArchiveReader = std::unique_ptr<archive, decltype(&archive_read_free)>;

// What a reader accepts:
//   stream     one stream, gzip, zstd or uncompressed, read as it is (an empty
//              stream is an empty archive): a layer blob before its tar is read.
//   tar        a tar archive (ustar, pax, GNU), gzip, zstd or uncompressed.
//   plain_tar  an uncompressed tar archive only (behind a `stream` reader).
enum class ArchiveKind { stream, tar, plain_tar };

inline ArchiveReader archive_reader(ArchiveKind kind) {
  ArchiveReader a(archive_read_new(), archive_read_free);
  if (!a) throw std::bad_alloc();
  if (kind == ArchiveKind::stream) {
    archive_read_support_format_raw(a.get());
    archive_read_support_format_empty(a.get());
  } else {
    archive_read_support_format_tar(a.get());
    archive_read_support_format_gnutar(a.get());
  }
  if (kind != ArchiveKind::plain_tar) {
    archive_read_support_filter_gzip(a.get());
    archive_read_support_filter_zstd(a.get());
  }
  archive_read_support_filter_none(a.get());
  return a;
}

}  // namespace kina::image
