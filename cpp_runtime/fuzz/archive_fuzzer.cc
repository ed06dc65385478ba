// libFuzzer target for the package reader: arbitrary bytes go through
// Archive::parse, every entry's CRC check and, for the manifest and format
// entries, Json::parse. Besides the sanitizers, it checks the properties the
// loader relies on and traps when one fails.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

#include "archive.h"
#include "bytes.h"
#include "json.h"
#include "sha256.h"

namespace {

using aotc::internal::Archive;
using aotc::internal::ArchiveEntry;
using aotc::internal::Bytes;
using aotc::internal::Code;
using aotc::internal::Json;

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Independent re-statement of the zip-slip rule: no accepted name may be
// absolute, contain '\\' or NUL, or have a ".." component.
bool escapes_root(std::string_view name) {
  if (name.empty() || name[0] == '/') return true;
  if (name.find('\\') != std::string_view::npos || name.find('\0') != std::string_view::npos) {
    return true;
  }
  std::string_view rest = name;
  while (true) {
    size_t slash = rest.find('/');
    if (rest.substr(0, slash) == "..") return true;
    if (slash == std::string_view::npos) return false;
    rest.remove_prefix(slash + 1);
  }
}

// An error must be a corrupt-package error that explains itself.
void check_error(const aotc::internal::Status& status) {
  if (status.code() != Code::kCorruptPackage || status.message().empty()) __builtin_trap();
}

// Visits the parse tree through the accessors the loader uses; get() must
// find each member again, since duplicate keys are refused.
void walk(const Json& json) {
  if (json.is_int()) (void)json.as_int();
  for (const Json& item : json.items()) walk(item);
  for (const auto& member : json.members()) {
    if (json.get(member.first) != &member.second) __builtin_trap();
    walk(member.second);
  }
}

void check_entry(const Archive& archive, const ArchiveEntry& entry) {
  const Bytes& bytes = *archive.bytes();
  if (entry.data_offset > bytes.size() || entry.size > bytes.size() - entry.data_offset) {
    __builtin_trap();
  }
  if (archive.find(entry.name) != &entry) __builtin_trap();
  if (escapes_root(entry.name)) __builtin_trap();

  auto crc = archive.check_crc(entry);
  if (!crc.ok()) check_error(crc);
  if (ends_with(entry.name, "manifest.json") || ends_with(entry.name, "archive_format")) {
    auto json = Json::parse(archive.text(entry));
    if (json.ok()) {
      walk(*json);
    } else {
      check_error(json.status());
    }
    (void)aotc::internal::sha256_hex(archive.data(entry), entry.size);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = Bytes::copy_of(data, size);
  if (!bytes.ok()) return 0;
  auto archive = Archive::parse(std::move(bytes).value());
  if (!archive.ok()) {
    check_error(archive.status());
    return 0;
  }
  for (const ArchiveEntry& entry : archive->entries()) check_entry(*archive, entry);
  return 0;
}
