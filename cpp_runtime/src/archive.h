// Archive: a read-only view of a .pt2 zip (docs/FORMAT.md). Parsing checks
// structure only (bounds, zip64, local headers, names, STORED method); CRC and
// sha256 checks are separate so the caller picks how deep to verify.
// Hostile input must yield an error Status, never a crash: fuzzed by
// cpp_runtime/fuzz/archive_fuzzer.cc.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bytes.h"
#include "status.h"

namespace aotc::internal {

struct ArchiveEntry {
  std::string name;      // full path inside the zip, validated (no "..", no absolute)
  uint64_t data_offset;  // offset of the entry's bytes in the file
  uint64_t size;         // stored size == uncompressed size (STORED only)
  uint32_t crc32;        // from the central directory
};

class Archive final {
 public:
  // Keeps |bytes| alive. Errors are Code::kCorruptPackage with the entry name
  // or offset at fault.
  static Result<Archive> parse(std::shared_ptr<const Bytes> bytes);

  const std::vector<ArchiveEntry>& entries() const { return entries_; }
  // nullptr when absent.
  const ArchiveEntry* find(std::string_view name) const;
  const uint8_t* data(const ArchiveEntry& entry) const {
    return bytes_->data() + entry.data_offset;
  }
  std::string_view text(const ArchiveEntry& entry) const {
    return std::string_view(reinterpret_cast<const char*>(data(entry)), entry.size);
  }
  // Recomputes the entry's CRC-32 and compares with the central directory.
  Status check_crc(const ArchiveEntry& entry) const;
  const std::shared_ptr<const Bytes>& bytes() const { return bytes_; }

 private:
  Archive() = default;
  std::shared_ptr<const Bytes> bytes_;
  std::vector<ArchiveEntry> entries_;
  std::map<std::string, size_t, std::less<>> index_;
};

uint32_t crc32(const uint8_t* data, size_t size);

}  // namespace aotc::internal
