// A strict reader for the zip subset aotc writes: one disk, STORED entries,
// ZIP64 when needed, canonical relative names. Every offset and size read from
// the file is checked (overflow included) before it is used, because the
// bytes may be truncated, corrupted or crafted. See docs/FORMAT.md and
// PKWARE's APPNOTE.TXT (sections 4.3 and 4.5) for the record layouts.
#include "archive.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <utility>

namespace aotc::internal {
namespace {

constexpr uint32_t kLocalSignature = 0x04034b50;
constexpr uint32_t kCentralSignature = 0x02014b50;
constexpr uint32_t kEndSignature = 0x06054b50;
constexpr uint32_t kZip64EndSignature = 0x06064b50;
constexpr uint32_t kZip64LocatorSignature = 0x07064b50;

constexpr uint64_t kLocalHeaderSize = 30;
constexpr uint64_t kCentralHeaderSize = 46;
constexpr uint64_t kEndSize = 22;
constexpr uint64_t kZip64EndSize = 56;
constexpr uint64_t kZip64LocatorSize = 20;
constexpr uint64_t kMaxCommentSize = 0xFFFF;

constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint16_t kMethodStored = 0;
constexpr uint16_t kFlagEncrypted = 1u << 0;
constexpr uint16_t kFlagDataDescriptor = 1u << 3;
constexpr uint16_t kFlagStrongEncryption = 1u << 6;
constexpr uint16_t kFlagMaskedHeaders = 1u << 13;
constexpr uint16_t kAnyEncryption = kFlagEncrypted | kFlagStrongEncryption | kFlagMaskedHeaders;

constexpr uint16_t kSaturated16 = 0xFFFF;
constexpr uint32_t kSaturated32 = 0xFFFFFFFF;

// Zip is little-endian; assembling from bytes needs no alignment and compiles
// to a single load on little-endian targets.
uint16_t load16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
uint32_t load32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint64_t load64(const uint8_t* p) {
  return static_cast<uint64_t>(load32(p)) | (static_cast<uint64_t>(load32(p + 4)) << 32);
}

unsigned long long ull(uint64_t v) { return static_cast<unsigned long long>(v); }

// True when [offset, offset + length) lies inside [0, limit), without overflow.
bool in_range(uint64_t offset, uint64_t length, uint64_t limit) {
  uint64_t end;
  return !__builtin_add_overflow(offset, length, &end) && end <= limit;
}

// Names come from the file: escape anything unprintable (and quotes) before
// they reach an error message, and cap their length.
std::string printable(std::string_view name) {
  constexpr size_t kMaxShown = 200;
  std::string out;
  for (size_t i = 0; i < name.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7f || c == '\'' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (name.size() > kMaxShown) out += "...";
  return out;
}

Status corrupt(const char* format, ...) __attribute__((format(printf, 1, 2)));
Status corrupt(const char* format, ...) {
  char buf[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buf, sizeof(buf), format, args);
  va_end(args);
  return Error(Code::kCorruptPackage, "corrupt package: %s", buf);
}

// Where the central directory is, from the end records.
struct Directory {
  uint64_t entry_count;
  uint64_t offset;
  uint64_t size;
  uint64_t end_records_start;  // the central directory must end exactly here
};

// The central directory's view of one entry, before its local header is read.
struct CentralRecord {
  std::string name;
  uint16_t flags;
  uint16_t method;
  uint32_t crc32;
  uint64_t compressed_size;
  uint64_t size;
  uint64_t local_offset;
  uint32_t disk_start;
};

// Scans back over at most a maximal comment for the end record whose comment
// runs exactly to the end of the file (a signature inside a comment does not
// qualify).
Result<uint64_t> find_end_record(const uint8_t* data, uint64_t file_size) {
  if (file_size < kEndSize) {
    return corrupt("not a zip archive: %llu bytes is too small for an end of central directory",
                   ull(file_size));
  }
  uint64_t last = file_size - kEndSize;
  uint64_t first = last > kMaxCommentSize ? last - kMaxCommentSize : 0;
  for (uint64_t pos = last + 1; pos-- > first;) {
    if (load32(data + pos) == kEndSignature &&
        pos + kEndSize + load16(data + pos + 20) == file_size) {
      return pos;
    }
  }
  return corrupt(
      "no end of central directory record in the last %llu bytes (not a zip archive, or "
      "truncated)",
      ull(file_size - first));
}

// Reads the ZIP64 end record named by the locator at |locator_pos| and
// replaces the 16/32-bit values of |dir|, which must be saturated or agree.
Status read_zip64_end(const uint8_t* data, uint64_t locator_pos, Directory* dir) {
  const uint8_t* loc = data + locator_pos;
  uint32_t record_disk = load32(loc + 4);
  uint64_t record_pos = load64(loc + 8);
  uint32_t disk_count = load32(loc + 16);
  if (record_disk != 0 || disk_count > 1) {
    return corrupt("zip64 locator at offset %llu describes a multi-disk archive", ull(locator_pos));
  }
  if (!in_range(record_pos, kZip64EndSize, locator_pos)) {
    return corrupt("zip64 end record offset %llu is not before its locator at offset %llu",
                   ull(record_pos), ull(locator_pos));
  }
  const uint8_t* rec = data + record_pos;
  if (load32(rec) != kZip64EndSignature) {
    return corrupt("bad zip64 end record signature 0x%08x at offset %llu", load32(rec),
                   ull(record_pos));
  }
  // The size field counts the bytes after itself; anything else between the
  // record and the locator would be unaccounted for.
  uint64_t record_size = load64(rec + 4);
  uint64_t record_end;
  if (record_size < kZip64EndSize - 12 ||
      __builtin_add_overflow(record_pos + 12, record_size, &record_end) ||
      record_end != locator_pos) {
    return corrupt("zip64 end record at offset %llu has size %llu but its locator is at %llu",
                   ull(record_pos), ull(record_size), ull(locator_pos));
  }
  uint32_t disk = load32(rec + 16);
  uint32_t directory_disk = load32(rec + 20);
  uint64_t entries_on_disk = load64(rec + 24);
  uint64_t entry_count = load64(rec + 32);
  if (disk != 0 || directory_disk != 0 || entries_on_disk != entry_count) {
    return corrupt("zip64 end record at offset %llu describes a multi-disk archive",
                   ull(record_pos));
  }
  Directory z{entry_count, load64(rec + 48), load64(rec + 40), record_pos};
  bool agrees = (dir->entry_count == kSaturated16 || dir->entry_count == z.entry_count) &&
                (dir->size == kSaturated32 || dir->size == z.size) &&
                (dir->offset == kSaturated32 || dir->offset == z.offset);
  if (!agrees) {
    return corrupt(
        "end record (%llu entries, directory [%llu, +%llu)) disagrees with its zip64 "
        "record (%llu entries, directory [%llu, +%llu))",
        ull(dir->entry_count), ull(dir->offset), ull(dir->size), ull(z.entry_count), ull(z.offset),
        ull(z.size));
  }
  *dir = z;
  return OkStatus();
}

Result<Directory> read_directory_location(const uint8_t* data, uint64_t file_size) {
  AOTC_ASSIGN_OR_RETURN(uint64_t end_pos, find_end_record(data, file_size));
  const uint8_t* end = data + end_pos;
  uint16_t disk = load16(end + 4);
  uint16_t directory_disk = load16(end + 6);
  uint16_t entries_on_disk = load16(end + 8);
  Directory dir{load16(end + 10), load32(end + 16), load32(end + 12), end_pos};

  bool has_locator = end_pos >= kZip64LocatorSize &&
                     load32(data + end_pos - kZip64LocatorSize) == kZip64LocatorSignature;
  if (has_locator) {
    // Writers put 0 or 0xFFFF in the 16-bit disk fields of a zip64 archive.
    if ((disk != 0 && disk != kSaturated16) ||
        (directory_disk != 0 && directory_disk != kSaturated16)) {
      return corrupt("end record at offset %llu describes a multi-disk archive", ull(end_pos));
    }
    AOTC_RETURN_IF_ERROR(read_zip64_end(data, end_pos - kZip64LocatorSize, &dir));
  } else {
    if (dir.size == kSaturated32 || dir.offset == kSaturated32) {
      return corrupt("end record at offset %llu needs zip64 values but there is no zip64 locator",
                     ull(end_pos));
    }
    if (disk != 0 || directory_disk != 0 || entries_on_disk != dir.entry_count) {
      return corrupt("end record at offset %llu describes a multi-disk archive", ull(end_pos));
    }
  }

  uint64_t directory_end;
  if (__builtin_add_overflow(dir.offset, dir.size, &directory_end) ||
      directory_end != dir.end_records_start) {
    return corrupt(
        "central directory [%llu, +%llu) does not end where the end records start "
        "(offset %llu)",
        ull(dir.offset), ull(dir.size), ull(dir.end_records_start));
  }
  // Bounds the entry count by the file size before anything is allocated.
  if (dir.entry_count > dir.size / kCentralHeaderSize) {
    return corrupt("%llu entries cannot fit in a central directory of %llu bytes",
                   ull(dir.entry_count), ull(dir.size));
  }
  return dir;
}

// Replaces the saturated fields with values from the ZIP64 extra field
// (id 0x0001), which holds exactly the saturated ones, in this order. Other
// extra fields are skipped; a malformed tail is tolerated unless it hides the
// ZIP64 field (old zipalign padded with bare zero bytes).
Status apply_zip64_extra(const uint8_t* extra, uint64_t extra_size, const std::string& name,
                         uint64_t* size, uint64_t* compressed_size, uint64_t* local_offset,
                         uint32_t* disk_start) {
  bool need_size = *size == kSaturated32;
  bool need_compressed = *compressed_size == kSaturated32;
  bool need_offset = local_offset != nullptr && *local_offset == kSaturated32;
  bool need_disk = disk_start != nullptr && *disk_start == kSaturated16;
  uint64_t needed = 8 * (need_size + need_compressed + need_offset) + 4 * need_disk;
  if (needed == 0) return OkStatus();

  for (uint64_t pos = 0; pos + 4 <= extra_size;) {
    uint16_t id = load16(extra + pos);
    uint16_t field_size = load16(extra + pos + 2);
    if (!in_range(pos + 4, field_size, extra_size)) break;
    const uint8_t* field = extra + pos + 4;
    if (id == kZip64ExtraId) {
      if (field_size < needed) {
        return corrupt("entry '%s': zip64 extra field has %u bytes but %llu are needed",
                       printable(name).c_str(), field_size, ull(needed));
      }
      auto next64 = [&field] {
        uint64_t value = load64(field);
        field += 8;
        return value;
      };
      if (need_size) *size = next64();
      if (need_compressed) *compressed_size = next64();
      if (need_offset) *local_offset = next64();
      if (need_disk) *disk_start = load32(field);
      return OkStatus();
    }
    pos += 4 + field_size;
  }
  return corrupt("entry '%s': sizes or offset need a zip64 extra field, which is missing",
                 printable(name).c_str());
}

// Zip-slip and ambiguity guard: names must be canonical relative paths, so no
// entry can escape an extraction directory and no two spellings name one file.
Status check_name(const std::string& name, uint64_t index) {
  if (name.empty()) return corrupt("central directory entry %llu has an empty name", ull(index));
  std::string shown = printable(name);
  if (name.find('\0') != std::string::npos) {
    return corrupt("entry '%s': name contains a NUL byte", shown.c_str());
  }
  if (name.find('\\') != std::string::npos) {
    return corrupt("entry '%s': name contains a backslash", shown.c_str());
  }
  if (name[0] == '/') return corrupt("entry '%s': name is an absolute path", shown.c_str());
  bool drive = name.size() >= 2 && name[1] == ':' &&
               ((name[0] >= 'A' && name[0] <= 'Z') || (name[0] >= 'a' && name[0] <= 'z'));
  if (drive) return corrupt("entry '%s': name starts with a drive letter", shown.c_str());
  // A trailing '/' marks a directory entry; every other component must be a
  // real name.
  size_t start = 0;
  while (start < name.size()) {
    size_t slash = name.find('/', start);
    size_t end = slash == std::string::npos ? name.size() : slash;
    std::string_view component(name.data() + start, end - start);
    if (component == "..") return corrupt("entry '%s': name contains '..'", shown.c_str());
    if (component.empty() || component == ".") {
      return corrupt("entry '%s': name has an empty or '.' path component", shown.c_str());
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return OkStatus();
}

// Parses the central directory header at |*pos| and advances |*pos| past it.
Result<CentralRecord> read_central_record(const uint8_t* data, const Directory& dir, uint64_t index,
                                          uint64_t* pos) {
  uint64_t directory_end = dir.offset + dir.size;  // checked by read_directory_location
  if (!in_range(*pos, kCentralHeaderSize, directory_end)) {
    return corrupt(
        "central directory entry %llu at offset %llu runs past the directory's end (%llu)",
        ull(index), ull(*pos), ull(directory_end));
  }
  const uint8_t* p = data + *pos;
  if (load32(p) != kCentralSignature) {
    return corrupt("bad central directory signature 0x%08x for entry %llu at offset %llu",
                   load32(p), ull(index), ull(*pos));
  }
  uint16_t name_size = load16(p + 28);
  uint16_t extra_size = load16(p + 30);
  uint16_t comment_size = load16(p + 32);
  uint64_t variable_size = uint64_t{name_size} + extra_size + comment_size;
  if (!in_range(*pos + kCentralHeaderSize, variable_size, directory_end)) {
    return corrupt(
        "central directory entry %llu at offset %llu: name/extra/comment run past the "
        "directory's end (%llu)",
        ull(index), ull(*pos), ull(directory_end));
  }
  CentralRecord rec;
  rec.name.assign(reinterpret_cast<const char*>(p + kCentralHeaderSize), name_size);
  rec.flags = load16(p + 8);
  rec.method = load16(p + 10);
  rec.crc32 = load32(p + 16);
  rec.compressed_size = load32(p + 20);
  rec.size = load32(p + 24);
  rec.disk_start = load16(p + 34);
  rec.local_offset = load32(p + 42);
  AOTC_RETURN_IF_ERROR(check_name(rec.name, index));
  AOTC_RETURN_IF_ERROR(apply_zip64_extra(p + kCentralHeaderSize + name_size, extra_size, rec.name,
                                         &rec.size, &rec.compressed_size, &rec.local_offset,
                                         &rec.disk_start));
  *pos += kCentralHeaderSize + variable_size;

  std::string shown = printable(rec.name);
  if (rec.disk_start != 0) {
    return corrupt("entry '%s' starts on disk %u; multi-disk archives are not supported",
                   shown.c_str(), rec.disk_start);
  }
  if (rec.flags & kAnyEncryption) {
    return Error(Code::kCorruptPackage, "entry '%s' is encrypted; aotc packages are not",
                 shown.c_str());
  }
  if (rec.method != kMethodStored) {
    return Error(Code::kCorruptPackage,
                 "entry '%s' uses compression method %u; aotc packages store entries uncompressed",
                 shown.c_str(), rec.method);
  }
  if (rec.compressed_size != rec.size) {
    return corrupt("entry '%s' is stored but its compressed size %llu differs from its size %llu",
                   shown.c_str(), ull(rec.compressed_size), ull(rec.size));
  }
  return rec;
}

// Checks the local header against the central record and returns where the
// entry's bytes start. Entry data must lie before the central directory.
Result<uint64_t> read_local_header(const uint8_t* data, uint64_t file_size, const Directory& dir,
                                   const CentralRecord& rec) {
  std::string shown = printable(rec.name);
  uint64_t offset = rec.local_offset;
  if (!in_range(offset, kLocalHeaderSize, dir.offset)) {
    return corrupt(
        "entry '%s': local header at offset %llu is not before the central directory "
        "(offset %llu)",
        shown.c_str(), ull(offset), ull(dir.offset));
  }
  const uint8_t* p = data + offset;
  if (load32(p) != kLocalSignature) {
    return corrupt("entry '%s': bad local header signature 0x%08x at offset %llu", shown.c_str(),
                   load32(p), ull(offset));
  }
  uint16_t flags = load16(p + 6);
  uint16_t method = load16(p + 8);
  uint32_t crc = load32(p + 14);
  uint64_t compressed_size = load32(p + 18);
  uint64_t size = load32(p + 22);
  uint16_t name_size = load16(p + 26);
  uint16_t extra_size = load16(p + 28);
  if (!in_range(offset + kLocalHeaderSize, uint64_t{name_size} + extra_size, dir.offset)) {
    return corrupt(
        "entry '%s': local header at offset %llu runs into the central directory "
        "(offset %llu)",
        shown.c_str(), ull(offset), ull(dir.offset));
  }
  const char* local_name = reinterpret_cast<const char*>(p + kLocalHeaderSize);
  if (std::string_view(local_name, name_size) != rec.name) {
    return corrupt("entry '%s': local header at offset %llu names '%s'", shown.c_str(), ull(offset),
                   printable(std::string_view(local_name, name_size)).c_str());
  }
  if (method != rec.method || (flags & kAnyEncryption) != (rec.flags & kAnyEncryption)) {
    return corrupt(
        "entry '%s': local header method/flags (%u/0x%04x) disagree with the central "
        "directory (%u/0x%04x)",
        shown.c_str(), method, flags, rec.method, rec.flags);
  }
  // With a data descriptor the local CRC and sizes are zero placeholders.
  if (!(rec.flags & kFlagDataDescriptor)) {
    AOTC_RETURN_IF_ERROR(apply_zip64_extra(p + kLocalHeaderSize + name_size, extra_size, rec.name,
                                           &size, &compressed_size, nullptr, nullptr));
    if (crc != rec.crc32 || size != rec.size || compressed_size != rec.compressed_size) {
      return corrupt(
          "entry '%s': local header (crc 0x%08x, size %llu) disagrees with the central "
          "directory (crc 0x%08x, size %llu)",
          shown.c_str(), crc, ull(size), rec.crc32, ull(rec.size));
    }
  }
  uint64_t data_offset = offset + kLocalHeaderSize + name_size + extra_size;
  uint64_t data_end;
  if (__builtin_add_overflow(data_offset, rec.size, &data_end) || data_end > file_size) {
    return corrupt("entry '%s' data [%llu, %llu) runs past end of file (%llu bytes)", shown.c_str(),
                   ull(data_offset), ull(data_offset + rec.size), ull(file_size));
  }
  if (data_end > dir.offset) {
    return corrupt("entry '%s' data [%llu, %llu) overlaps the central directory at offset %llu",
                   shown.c_str(), ull(data_offset), ull(data_end), ull(dir.offset));
  }
  return data_offset;
}

// Entries of a well-formed archive occupy disjoint [local header, data end)
// ranges; overlap means the directory lies about where entries are.
Status check_disjoint(const std::vector<ArchiveEntry>& entries,
                      const std::vector<uint64_t>& local_offsets) {
  std::vector<size_t> order(entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return local_offsets[a] < local_offsets[b]; });
  for (size_t k = 1; k < order.size(); ++k) {
    const ArchiveEntry& prev = entries[order[k - 1]];
    uint64_t prev_end = prev.data_offset + prev.size;  // checked by read_local_header
    if (prev_end > local_offsets[order[k]]) {
      return corrupt("entries '%s' and '%s' overlap (data ends at %llu, next header at %llu)",
                     printable(prev.name).c_str(), printable(entries[order[k]].name).c_str(),
                     ull(prev_end), ull(local_offsets[order[k]]));
    }
  }
  return OkStatus();
}

// Slicing-by-8 tables for the zlib polynomial (reflected 0xEDB88320), built
// at compile time: weights can be gigabytes, so CRC speed matters.
struct CrcTables {
  uint32_t t[8][256];
};

constexpr CrcTables make_crc_tables() {
  CrcTables tables{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
    tables.t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) {
      uint32_t prev = tables.t[s - 1][i];
      tables.t[s][i] = (prev >> 8) ^ tables.t[0][prev & 0xFF];
    }
  }
  return tables;
}

constexpr CrcTables kCrcTables = make_crc_tables();

}  // namespace

uint32_t crc32(const uint8_t* data, size_t size) {
  const auto& t = kCrcTables.t;
  uint32_t c = 0xFFFFFFFFu;
  for (; size >= 8; data += 8, size -= 8) {
    uint32_t lo = load32(data) ^ c;
    uint32_t hi = load32(data + 4);
    c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
        t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
  }
  for (; size > 0; ++data, --size) c = t[0][(c ^ *data) & 0xFF] ^ (c >> 8);
  return ~c;
}

Result<Archive> Archive::parse(std::shared_ptr<const Bytes> bytes) {
  if (bytes == nullptr) return Error(Code::kInvalidArgument, "Archive::parse: no bytes");
  const uint8_t* data = bytes->data();
  uint64_t file_size = bytes->size();
  AOTC_ASSIGN_OR_RETURN(Directory dir, read_directory_location(data, file_size));

  Archive archive;
  archive.entries_.reserve(dir.entry_count);  // bounded by the directory size
  std::vector<uint64_t> local_offsets;
  local_offsets.reserve(dir.entry_count);
  uint64_t pos = dir.offset;
  for (uint64_t i = 0; i < dir.entry_count; ++i) {
    AOTC_ASSIGN_OR_RETURN(CentralRecord rec, read_central_record(data, dir, i, &pos));
    AOTC_ASSIGN_OR_RETURN(uint64_t data_offset, read_local_header(data, file_size, dir, rec));
    if (!archive.index_.emplace(rec.name, archive.entries_.size()).second) {
      return corrupt("entry '%s' appears twice", printable(rec.name).c_str());
    }
    local_offsets.push_back(rec.local_offset);
    archive.entries_.push_back({std::move(rec.name), data_offset, rec.size, rec.crc32});
  }
  if (pos != dir.offset + dir.size) {
    return corrupt("central directory has %llu unexplained bytes after its %llu entries",
                   ull(dir.offset + dir.size - pos), ull(dir.entry_count));
  }
  AOTC_RETURN_IF_ERROR(check_disjoint(archive.entries_, local_offsets));
  archive.bytes_ = std::move(bytes);
  return archive;
}

const ArchiveEntry* Archive::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second];
}

Status Archive::check_crc(const ArchiveEntry& entry) const {
  uint32_t computed = crc32(data(entry), entry.size);
  if (computed != entry.crc32) {
    return Error(Code::kCorruptPackage,
                 "corrupt package: entry '%s': CRC-32 mismatch (stored 0x%08x, computed 0x%08x)",
                 printable(entry.name).c_str(), entry.crc32, computed);
  }
  return OkStatus();
}

}  // namespace aotc::internal
