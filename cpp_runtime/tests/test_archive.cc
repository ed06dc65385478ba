// Tests of the zip reader (archive.cc) and Bytes (bytes.cc). Zips are built in
// memory by ZipWriter below, then corrupted field by field; every malformed
// archive must produce an error Status, never a crash.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "archive.h"
#include "bytes.h"
#include "testing.h"

using aotc::internal::Archive;
using aotc::internal::ArchiveEntry;
using aotc::internal::Bytes;
using aotc::internal::Code;
using aotc::internal::Result;

namespace {

void put16(std::string* s, size_t at, uint16_t v) {
  for (int i = 0; i < 2; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}
void put32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}
void put64(std::string* s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}
// Test archives are small, so narrowing sizes to the field width is safe.
void append16(std::string* s, uint64_t v) {
  s->append(2, '\0');
  put16(s, s->size() - 2, static_cast<uint16_t>(v));
}
void append32(std::string* s, uint64_t v) {
  s->append(4, '\0');
  put32(s, s->size() - 4, static_cast<uint32_t>(v));
}
void append64(std::string* s, uint64_t v) {
  s->append(8, '\0');
  put64(s, s->size() - 8, v);
}

uint32_t reference_crc32(const std::string& s) {
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char byte : s) {
    c ^= byte;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (0xEDB88320u ^ (c >> 1)) : (c >> 1);
  }
  return ~c;
}

// One entry to write. The overrides let tests build archives that lie.
struct EntrySpec {
  std::string name;
  std::string data;
  uint16_t method = 0;
  uint16_t flags = 0;
  bool write_local = true;             // false: central record only
  int64_t local_offset_override = -1;  // central record points here instead
};

// Where ZipWriter put each structure, so tests can patch fields.
struct Built {
  std::string bytes;
  std::vector<size_t> local;    // local header offset per entry
  std::vector<size_t> central;  // central header offset per entry
  std::vector<size_t> data;     // data offset per entry
  size_t directory = 0;         // central directory offset
  size_t end = 0;               // end of central directory record offset
  size_t zip64_end = 0;         // zip64 end record offset (zip64 only)
};

// Writes a minimal, standard zip: local header + data per entry, central
// directory, (zip64 end record + locator,) end record. With |zip64| every
// size and offset is saturated and carried in zip64 extra fields.
Built write_zip(const std::vector<EntrySpec>& specs, bool zip64 = false,
                const std::string& comment = "") {
  Built out;
  std::string& b = out.bytes;
  for (const EntrySpec& e : specs) {
    out.local.push_back(b.size());
    if (!e.write_local) {
      out.data.push_back(0);
      continue;
    }
    append32(&b, 0x04034b50);
    append16(&b, zip64 ? 45 : 20);
    append16(&b, e.flags);
    append16(&b, e.method);
    append32(&b, 0);  // time, date
    append32(&b, reference_crc32(e.data));
    append32(&b, zip64 ? 0xFFFFFFFF : e.data.size());
    append32(&b, zip64 ? 0xFFFFFFFF : e.data.size());
    append16(&b, e.name.size());
    append16(&b, zip64 ? 20 : 0);
    b += e.name;
    if (zip64) {
      append16(&b, 1);
      append16(&b, 16);
      append64(&b, e.data.size());
      append64(&b, e.data.size());
    }
    out.data.push_back(b.size());
    b += e.data;
  }
  out.directory = b.size();
  for (size_t i = 0; i < specs.size(); ++i) {
    const EntrySpec& e = specs[i];
    uint64_t local = e.local_offset_override >= 0 ? static_cast<uint64_t>(e.local_offset_override)
                                                  : out.local[i];
    out.central.push_back(b.size());
    append32(&b, 0x02014b50);
    append16(&b, zip64 ? 45 : 20);
    append16(&b, zip64 ? 45 : 20);
    append16(&b, e.flags);
    append16(&b, e.method);
    append32(&b, 0);
    append32(&b, reference_crc32(e.data));
    append32(&b, zip64 ? 0xFFFFFFFF : e.data.size());
    append32(&b, zip64 ? 0xFFFFFFFF : e.data.size());
    append16(&b, e.name.size());
    append16(&b, zip64 ? 28 : 0);
    append16(&b, 0);  // comment
    append16(&b, 0);  // disk
    append16(&b, 0);
    append32(&b, 0);
    append32(&b, zip64 ? 0xFFFFFFFF : local);
    b += e.name;
    if (zip64) {
      append16(&b, 1);
      append16(&b, 24);
      append64(&b, e.data.size());
      append64(&b, e.data.size());
      append64(&b, local);
    }
  }
  size_t directory_size = b.size() - out.directory;
  if (zip64) {
    out.zip64_end = b.size();
    append32(&b, 0x06064b50);
    append64(&b, 44);
    append16(&b, 45);
    append16(&b, 45);
    append32(&b, 0);
    append32(&b, 0);
    append64(&b, specs.size());
    append64(&b, specs.size());
    append64(&b, directory_size);
    append64(&b, out.directory);
    append32(&b, 0x07064b50);
    append32(&b, 0);
    append64(&b, out.zip64_end);
    append32(&b, 1);
  }
  out.end = b.size();
  append32(&b, 0x06054b50);
  append16(&b, 0);
  append16(&b, 0);
  append16(&b, zip64 ? 0xFFFF : specs.size());
  append16(&b, zip64 ? 0xFFFF : specs.size());
  append32(&b, zip64 ? 0xFFFFFFFF : directory_size);
  append32(&b, zip64 ? 0xFFFFFFFF : out.directory);
  append16(&b, comment.size());
  b += comment;
  return out;
}

Result<Archive> parse(const std::string& bytes) {
  auto copy = Bytes::copy_of(bytes.data(), bytes.size());
  if (!copy.ok()) return copy.status();
  return Archive::parse(std::move(copy).value());
}

std::vector<EntrySpec> sample_entries() {
  return {{"pkg/archive_format", "pt2"},
          {"pkg/data/aotc/m/manifest.json", "{\"format_version\": 1}"},
          {"pkg/data/weights/m/w0", std::string(1000, '\x07')}};
}

void expect_sample_archive(const Archive& archive, const Built& built) {
  EXPECT_EQ(archive.entries().size(), 3u);
  const ArchiveEntry* manifest = archive.find("pkg/data/aotc/m/manifest.json");
  EXPECT_TRUE(manifest != nullptr);
  if (manifest == nullptr) return;
  EXPECT_EQ(archive.text(*manifest), "{\"format_version\": 1}");
  EXPECT_EQ(manifest->data_offset, built.data[1]);
  EXPECT_EQ(archive.entries()[0].name, "pkg/archive_format");
  EXPECT_EQ(archive.entries()[2].size, 1000u);
  EXPECT_TRUE(archive.find("pkg/missing") == nullptr);
  for (const ArchiveEntry& entry : archive.entries()) EXPECT_OK(archive.check_crc(entry));
}

}  // namespace

TEST(crc32_matches_zlib) {
  const std::string check = "123456789";
  EXPECT_EQ(aotc::internal::crc32(reinterpret_cast<const uint8_t*>(check.data()), check.size()),
            0xCBF43926u);
  EXPECT_EQ(aotc::internal::crc32(nullptr, 0), 0u);
  // Every length around the 8-byte slicing boundary agrees with bitwise CRC.
  std::string data;
  for (int i = 0; i < 100; ++i) {
    data.push_back(static_cast<char>(i * 37 + 11));
    uint32_t fast =
        aotc::internal::crc32(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    EXPECT_EQ(fast, reference_crc32(data));
  }
}

TEST(parses_plain_archive) {
  Built built = write_zip(sample_entries());
  auto archive = parse(built.bytes);
  EXPECT_OK(archive);
  if (archive.ok()) expect_sample_archive(*archive, built);
}

TEST(parses_zip64_archive) {
  Built built = write_zip(sample_entries(), /*zip64=*/true);
  auto archive = parse(built.bytes);
  EXPECT_OK(archive);
  if (archive.ok()) expect_sample_archive(*archive, built);
}

TEST(parses_python_force_zip64_archive) {
  // zipfile.ZipFile.open(name, 'w', force_zip64=True) puts the zip64 sizes in
  // the local header only; the central directory stays 32-bit.
  const char* hex =
      "504b03041400000000009023765d305c3428030000000300000012000000706b672f617263686976655f66"
      "6f726d6174707432504b03042d00000000000000210046d76c45ffffffffffffffff0e001400706b672f64"
      "6174612f772e62696e010010000a000000000000000a0000000000000000010203040506070809504b0102"
      "14031400000000009023765d305c34280300000003000000120000000000000000000000800100000000"
      "706b672f617263686976655f666f726d6174504b01022d032d00000000000000210046d76c450a000000"
      "0a0000000e0000000000000000000000800133000000706b672f646174612f772e62696e504b05060000"
      "0000020002007c0000007d0000000000";
  std::string bytes;
  for (size_t i = 0; hex[i] && hex[i + 1]; i += 2) {
    bytes.push_back(static_cast<char>(std::strtoul(std::string(hex + i, 2).c_str(), nullptr, 16)));
  }
  auto archive = parse(bytes);
  EXPECT_OK(archive);
  if (!archive.ok()) return;
  const ArchiveEntry* w = archive->find("pkg/data/w.bin");
  EXPECT_TRUE(w != nullptr);
  if (w == nullptr) return;
  EXPECT_EQ(w->size, 10u);
  EXPECT_EQ(archive->data(*w)[9], 9);
  EXPECT_OK(archive->check_crc(*w));
}

TEST(empty_archive_and_comment) {
  auto empty = parse(write_zip({}).bytes);
  EXPECT_OK(empty);
  if (empty.ok()) EXPECT_EQ(empty->entries().size(), 0u);
  // An end record inside the comment is skipped: its own comment length does
  // not reach the end of the file.
  std::string fake_end = write_zip({}).bytes;
  auto commented = parse(write_zip(sample_entries(), false, "note " + fake_end + " tail").bytes);
  EXPECT_OK(commented);
}

TEST(refuses_tiny_and_non_zip_input) {
  EXPECT_ERROR_CONTAINS(parse(""), "too small");
  EXPECT_ERROR_CONTAINS(parse(std::string(100, 'x')), "no end of central directory");
  auto r = parse("PK\x05\x06");
  EXPECT_TRUE(!r.ok() && r.status().code() == Code::kCorruptPackage);
}

TEST(every_truncation_is_an_error) {
  for (bool zip64 : {false, true}) {
    Built built = write_zip(sample_entries(), zip64);
    for (size_t n = 0; n < built.bytes.size(); ++n) {
      auto r = parse(built.bytes.substr(0, n));
      EXPECT_TRUE(!r.ok());
    }
  }
}

TEST(single_byte_corruptions_never_crash) {
  for (bool zip64 : {false, true}) {
    Built built = write_zip(sample_entries(), zip64);
    for (size_t i = 0; i < built.bytes.size(); ++i) {
      for (int x : {0x01, 0x80, 0xFF}) {
        std::string bytes = built.bytes;
        bytes[i] = static_cast<char>(bytes[i] ^ x);
        auto r = parse(bytes);
        if (r.ok()) {
          for (const ArchiveEntry& e : r->entries()) (void)r->check_crc(e);
        } else {
          EXPECT_TRUE(r.status().code() == Code::kCorruptPackage);
        }
      }
    }
  }
}

TEST(lying_sizes) {
  Built built = write_zip(sample_entries());
  // Size past the end of the file, consistent between local and central.
  std::string past = built.bytes;
  put32(&past, built.local[2] + 18, 5000);
  put32(&past, built.local[2] + 22, 5000);
  put32(&past, built.central[2] + 20, 5000);
  put32(&past, built.central[2] + 24, 5000);
  EXPECT_ERROR_CONTAINS(parse(past), "entry 'pkg/data/weights/m/w0' data [");
  EXPECT_ERROR_CONTAINS(parse(past), "runs past end of file");
  // Size that reaches into the central directory.
  std::string into = built.bytes;
  uint32_t size = static_cast<uint32_t>(built.directory - built.data[2] + 10);
  put32(&into, built.local[2] + 18, size);
  put32(&into, built.local[2] + 22, size);
  put32(&into, built.central[2] + 20, size);
  put32(&into, built.central[2] + 24, size);
  EXPECT_ERROR_CONTAINS(parse(into), "overlaps the central directory");
  // Compressed size differing from size.
  std::string stored = built.bytes;
  put32(&stored, built.central[0] + 20, 2);
  EXPECT_ERROR_CONTAINS(parse(stored), "compressed size 2 differs");
  // Local header disagreeing with the central directory.
  std::string local = built.bytes;
  put32(&local, built.local[1] + 22, 3);
  EXPECT_ERROR_CONTAINS(parse(local), "local header (crc");
  // Zip64 sizes near 2^64 must not overflow.
  Built z = write_zip(sample_entries(), true);
  std::string huge = z.bytes;
  size_t extra = z.central[2] + 46 + sample_entries()[2].name.size() + 4;
  put64(&huge, extra, ~uint64_t{0} - 10);
  put64(&huge, extra + 8, ~uint64_t{0} - 10);
  size_t local_extra = z.local[2] + 30 + sample_entries()[2].name.size() + 4;
  put64(&huge, local_extra, ~uint64_t{0} - 10);
  put64(&huge, local_extra + 8, ~uint64_t{0} - 10);
  EXPECT_ERROR_CONTAINS(parse(huge), "runs past end of file");
}

TEST(lying_offsets) {
  Built built = write_zip(sample_entries());
  std::string garbage = built.bytes;
  put32(&garbage, built.central[1] + 42, 3);
  EXPECT_ERROR_CONTAINS(parse(garbage), "bad local header signature");
  std::string beyond = built.bytes;
  put32(&beyond, built.central[1] + 42, static_cast<uint32_t>(built.directory));
  EXPECT_ERROR_CONTAINS(parse(beyond), "is not before the central directory");
  std::string directory = built.bytes;
  put32(&directory, built.end + 16, static_cast<uint32_t>(built.directory + 1));
  EXPECT_ERROR_CONTAINS(parse(directory), "does not end where the end records start");
  std::string count = built.bytes;
  put16(&count, built.end + 8, 60000);
  put16(&count, built.end + 10, 60000);
  EXPECT_ERROR_CONTAINS(parse(count), "cannot fit");
  std::string fewer = built.bytes;
  put16(&fewer, built.end + 8, 2);
  put16(&fewer, built.end + 10, 2);
  EXPECT_ERROR_CONTAINS(parse(fewer), "unexplained bytes");
  // Zip64 end record disagreeing with the 32-bit end record.
  Built z = write_zip(sample_entries(), true);
  std::string disagree = z.bytes;
  put16(&disagree, z.end + 10, 2);
  EXPECT_ERROR_CONTAINS(parse(disagree), "disagrees with its zip64 record");
  std::string locator = z.bytes;
  put64(&locator, z.end - 20 + 8, z.end);
  EXPECT_ERROR_CONTAINS(parse(locator), "zip64 end record offset");
  std::string missing = write_zip(sample_entries()).bytes;
  put32(&missing, write_zip(sample_entries()).end + 16, 0xFFFFFFFF);
  EXPECT_ERROR_CONTAINS(parse(missing), "no zip64 locator");
}

TEST(overlapping_entries) {
  // Entry 'a' holds a complete local header for 'b'; the central directory
  // then lists 'b' at that header, inside a's data.
  Built inner = write_zip({{"b", "xyz"}});
  std::string b_local = inner.bytes.substr(0, inner.directory);
  Built probe = write_zip({{"a", b_local}});
  Built built =
      write_zip({{"a", b_local}, {"b", "xyz", 0, 0, false, static_cast<int64_t>(probe.data[0])}});
  EXPECT_ERROR_CONTAINS(parse(built.bytes), "overlap");
}

TEST(refuses_unsafe_names) {
  const char* bad[] = {"../evil",     "pkg/../../etc/passwd",
                       "/etc/passwd", "C:/windows",
                       "c:x",         "pkg\\data",
                       "a//b",        "./a",
                       "pkg/./a",     "pkg/.."};
  for (const char* name : bad) {
    auto r = parse(write_zip({{name, "x"}}).bytes);
    EXPECT_TRUE(!r.ok() && r.status().code() == Code::kCorruptPackage);
  }
  EXPECT_ERROR_CONTAINS(parse(write_zip({{"../evil", "x"}}).bytes),
                        "entry '../evil': name contains '..'");
  EXPECT_ERROR_CONTAINS(parse(write_zip({{"/abs", "x"}}).bytes), "absolute path");
  EXPECT_ERROR_CONTAINS(parse(write_zip({{"D:evil", "x"}}).bytes), "drive letter");
  EXPECT_ERROR_CONTAINS(parse(write_zip({{"a\\b", "x"}}).bytes), "backslash");
  EXPECT_ERROR_CONTAINS(parse(write_zip({{std::string("a\0b", 3), "x"}}).bytes),
                        "entry 'a\\x00b': name contains a NUL byte");
  EXPECT_ERROR_CONTAINS(parse(write_zip({{"", "x"}}).bytes), "empty name");
  // Directory entries and dots inside names are fine.
  EXPECT_OK(parse(write_zip({{"pkg/", ""}, {"pkg/a..b/.c", "x"}}).bytes));
}

TEST(refuses_compression_encryption_duplicates) {
  EXPECT_ERROR_CONTAINS(
      parse(write_zip({{"pkg/x", "abc", /*method=*/8}}).bytes),
      "entry 'pkg/x' uses compression method 8; aotc packages store entries uncompressed");
  EXPECT_ERROR_CONTAINS(parse(write_zip({{"pkg/x", "abc", 0, /*flags=*/1}}).bytes),
                        "entry 'pkg/x' is encrypted");
  EXPECT_ERROR_CONTAINS(parse(write_zip({{"pkg/x", "a"}, {"pkg/y", "b"}, {"pkg/x", "c"}}).bytes),
                        "entry 'pkg/x' appears twice");
  Built built = write_zip(sample_entries());
  std::string renamed = built.bytes;
  renamed[built.local[0] + 30] = 'q';
  EXPECT_ERROR_CONTAINS(parse(renamed), "local header at offset 0 names 'qkg/archive_format'");
}

TEST(crc_mismatch_is_reported) {
  Built built = write_zip(sample_entries());
  std::string flipped = built.bytes;
  flipped[built.data[2] + 500] ^= 0x10;
  auto archive = parse(flipped);
  EXPECT_OK(archive);
  if (!archive.ok()) return;
  EXPECT_OK(archive->check_crc(archive->entries()[0]));
  EXPECT_ERROR_CONTAINS(archive->check_crc(archive->entries()[2]),
                        "entry 'pkg/data/weights/m/w0': CRC-32 mismatch (stored 0x");
}

TEST(bytes_copy_is_aligned) {
  std::string data(100, 'z');
  auto bytes = Bytes::copy_of(data.data(), data.size());
  EXPECT_OK(bytes);
  if (!bytes.ok()) return;
  EXPECT_EQ(reinterpret_cast<uintptr_t>((*bytes)->data()) % 64, 0u);
  EXPECT_EQ((*bytes)->size(), 100u);
  EXPECT_EQ(std::memcmp((*bytes)->data(), data.data(), 100), 0);
  auto empty = Bytes::copy_of(nullptr, 0);
  EXPECT_OK(empty);
}

TEST(bytes_map_file) {
  char dir_template[] = "/tmp/aotc_test_archive_XXXXXX";
  const char* dir = mkdtemp(dir_template);
  EXPECT_TRUE(dir != nullptr);
  if (dir == nullptr) return;
  std::string path = std::string(dir) + "/pkg.pt2";
  std::string empty_path = std::string(dir) + "/empty.pt2";
  Built built = write_zip(sample_entries());
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(built.bytes.data(), 1, built.bytes.size(), f);
  std::fclose(f);
  std::fclose(std::fopen(empty_path.c_str(), "wb"));

  auto mapped = Bytes::map_file(path);
  EXPECT_OK(mapped);
  if (mapped.ok()) {
    EXPECT_EQ((*mapped)->size(), built.bytes.size());
    auto archive = Archive::parse(*mapped);
    EXPECT_OK(archive);
    if (archive.ok()) expect_sample_archive(*archive, built);
  }
  EXPECT_ERROR_CONTAINS(Bytes::map_file(empty_path), "not an aotc package: file is empty");
  EXPECT_ERROR_CONTAINS(Bytes::map_file(std::string(dir) + "/missing.pt2"),
                        "missing.pt2': No such file or directory");
  EXPECT_ERROR_CONTAINS(Bytes::map_file(dir), "is a directory");
  auto missing = Bytes::map_file(std::string(dir) + "/missing.pt2");
  EXPECT_TRUE(!missing.ok() && missing.status().code() == Code::kIoError);
  unlink(path.c_str());
  unlink(empty_path.c_str());
  rmdir(dir);
}

AOTC_TEST_MAIN()
