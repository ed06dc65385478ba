#include "npy.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.cc assumes a little-endian host"
#endif

namespace aotc::tools {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
constexpr int kMaxDims = AOTC_MAX_DIMS;

struct DescrInfo {
  const char* descr;  // as written, e.g. "<f4"
  DType dtype;
};
constexpr DescrInfo kDescrs[] = {
    {"<f4", DType::kFloat32},  {"<f2", DType::kFloat16}, {"<f8", DType::kFloat64},
    {"|i1", DType::kInt8},     {"|u1", DType::kUInt8},   {"<i2", DType::kInt16},
    {"<i4", DType::kInt32},    {"<i8", DType::kInt64},   {"|b1", DType::kBool},
    {"<u2", DType::kBFloat16},
};
constexpr char kSupportedDescrs[] =
    "'<f4', '<f2', '<f8', '|i1', '|u1', '<i2', '<i4', '<i8', '|b1', '<u2' (bfloat16 bits)";

Status error(StatusCode code, const std::string& name, const std::string& what) {
  return Status(code, name + ": " + what);
}
Status malformed(const std::string& name, const std::string& what) {
  return error(StatusCode::kInvalidArgument, name, "malformed NPY header: " + what);
}

// Maps a descr to a dtype. 1-byte types take '|' (NumPy's spelling) or '<';
// wider ones '<' or '=' (native, little-endian on every host we build for).
Result<DType> dtype_from_descr(const std::string& descr, const std::string& name) {
  if (descr.size() >= 2 && descr[0] == '>' && descr != ">i1" && descr != ">u1" && descr != ">b1") {
    return error(StatusCode::kUnsupported, name,
                 "big-endian dtype '" + descr + "' is not supported (save with " +
                     "arr.astype(arr.dtype.newbyteorder('<')))");
  }
  std::string normal = descr;
  if (normal.size() == 3) {
    const bool one_byte = normal[2] == '1';
    if (one_byte && normal[0] == '<') normal[0] = '|';
    if (!one_byte && normal[0] == '=') normal[0] = '<';
  }
  for (const DescrInfo& info : kDescrs) {
    if (normal == info.descr) return info.dtype;
  }
  return error(StatusCode::kUnsupported, name,
               "unsupported dtype '" + descr + "' (supported: " + kSupportedDescrs + ")");
}

// A parser for the header's Python dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& name) : text_(text), name_(name) {}

  Status parse(std::string* descr, bool* fortran_order, std::vector<int64_t>* shape) {
    bool have_descr = false, have_fortran = false, have_shape = false;
    skip_space();
    if (!consume('{')) return fail("expected '{'");
    while (true) {
      skip_space();
      if (consume('}')) break;
      std::string key;
      Status status = parse_string(&key);
      if (!status.ok()) return status;
      skip_space();
      if (!consume(':')) return fail("expected ':' after '" + key + "'");
      skip_space();
      if (key == "descr") {
        if (have_descr) return fail("duplicate key 'descr'");
        have_descr = true;
        if (peek() == '[') {
          return error(StatusCode::kUnsupported, name_,
                       "structured dtypes are not supported (descr is a list)");
        }
        status = parse_string(descr);
      } else if (key == "fortran_order") {
        if (have_fortran) return fail("duplicate key 'fortran_order'");
        have_fortran = true;
        status = parse_bool(fortran_order);
      } else if (key == "shape") {
        if (have_shape) return fail("duplicate key 'shape'");
        have_shape = true;
        status = parse_shape(shape);
      } else {
        return fail("unexpected key '" + key + "'");
      }
      if (!status.ok()) return status;
      skip_space();
      if (consume(',')) continue;
      skip_space();
      if (consume('}')) break;
      return fail("expected ',' or '}'");
    }
    skip_space();
    if (pos_ != text_.size()) return fail("unexpected text after '}'");
    if (!have_descr) return fail("missing key 'descr'");
    if (!have_fortran) return fail("missing key 'fortran_order'");
    if (!have_shape) return fail("missing key 'shape'");
    return Status();
  }

 private:
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool consume(char c) {
    if (peek() != c || pos_ >= text_.size()) return false;
    ++pos_;
    return true;
  }
  bool consume_word(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' ||
                                   text_[pos_] == '\n' || text_[pos_] == '\r')) {
      ++pos_;
    }
  }
  Status fail(const std::string& what) const {
    return malformed(name_, what + " at offset " + std::to_string(pos_) + " of the header");
  }

  Status parse_string(std::string* out) {
    const char quote = peek();
    if (quote != '\'' && quote != '"') return fail("expected a quoted string");
    ++pos_;
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != quote) {
      if (text_[pos_] == '\\') return fail("escapes in strings are not supported");
      ++pos_;
    }
    if (pos_ >= text_.size()) return fail("unterminated string");
    *out = std::string(text_.substr(start, pos_ - start));
    ++pos_;
    return Status();
  }

  Status parse_bool(bool* out) {
    if (consume_word("True")) {
      *out = true;
      return Status();
    }
    if (consume_word("False")) {
      *out = false;
      return Status();
    }
    return fail("expected True or False");
  }

  Status parse_int(int64_t* out) {
    if (peek() < '0' || peek() > '9') return fail("expected a non-negative integer");
    int64_t value = 0;
    while (peek() >= '0' && peek() <= '9') {
      const int digit = peek() - '0';
      if (value > (std::numeric_limits<int64_t>::max() - digit) / 10) {
        return fail("dimension too large");
      }
      value = value * 10 + digit;
      ++pos_;
    }
    consume('L');  // Python 2 long literal, as in files written by old NumPy
    *out = value;
    return Status();
  }

  // A Python tuple of ints: (), (3,), (2, 3) or (2, 3,).
  Status parse_shape(std::vector<int64_t>* out) {
    out->clear();
    if (!consume('(')) return fail("shape must be a tuple");
    skip_space();
    if (consume(')')) return Status();
    while (true) {
      int64_t dim;
      Status status = parse_int(&dim);
      if (!status.ok()) return status;
      if (out->size() >= static_cast<size_t>(kMaxDims)) {
        return error(StatusCode::kUnsupported, name_,
                     "more than " + std::to_string(kMaxDims) + " dimensions");
      }
      out->push_back(dim);
      skip_space();
      if (consume(')')) {
        if (out->size() == 1) return fail("shape (n) is not a tuple: write (n,)");
        return Status();
      }
      if (!consume(',')) return fail("expected ',' or ')' in shape");
      skip_space();
      if (consume(')')) return Status();
    }
  }

  std::string_view text_;
  const std::string& name_;
  size_t pos_ = 0;
};

uint32_t read_le(const uint8_t* p, size_t bytes) {
  uint32_t value = 0;
  for (size_t i = 0; i < bytes; ++i) value |= static_cast<uint32_t>(p[i]) << (8 * i);
  return value;
}

// numel * element size, or -1 on overflow.
int64_t byte_size(const std::vector<int64_t>& shape, size_t element_size) {
  int64_t bytes = static_cast<int64_t>(element_size);
  for (int64_t dim : shape) {
    if (dim == 0) return 0;
  }
  for (int64_t dim : shape) {
    if (bytes > std::numeric_limits<int64_t>::max() / dim) return -1;
    bytes *= dim;
  }
  return bytes;
}

std::string shape_literal(const std::vector<int64_t>& shape) {
  std::string out = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  if (shape.size() == 1) out += ",";
  return out + ")";
}

}  // namespace

int64_t NpyArray::numel() const {
  int64_t n = 1;
  for (int64_t dim : shape) n *= dim;
  return n;
}

const char* npy_descr(DType dtype) {
  for (const DescrInfo& info : kDescrs) {
    if (info.dtype == dtype) return info.descr;
  }
  return nullptr;
}

Result<NpyArray> parse_npy(const void* data, size_t size, const std::string& name) {
  const uint8_t* bytes = static_cast<const uint8_t*>(data);
  if (size < kMagicSize + 2 || std::memcmp(bytes, kMagic, kMagicSize) != 0) {
    return error(StatusCode::kInvalidArgument, name, "not an NPY file (no \\x93NUMPY magic)");
  }
  const int major = bytes[6], minor = bytes[7];
  if ((major != 1 && major != 2 && major != 3) || minor != 0) {
    return error(StatusCode::kUnsupported, name,
                 "unsupported NPY format version " + std::to_string(major) + "." +
                     std::to_string(minor) + " (1.0, 2.0 and 3.0 are supported)");
  }
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t prefix = kMagicSize + 2 + length_bytes;
  if (size < prefix) return malformed(name, "file ends inside the header length");
  const size_t header_size = read_le(bytes + kMagicSize + 2, length_bytes);
  if (header_size > size - prefix) {
    return malformed(name, "header length " + std::to_string(header_size) + " exceeds the " +
                               std::to_string(size - prefix) + " bytes after it");
  }
  const std::string_view header(reinterpret_cast<const char*>(bytes + prefix), header_size);

  std::string descr;
  bool fortran_order = false;
  NpyArray array;
  Status status = HeaderParser(header, name).parse(&descr, &fortran_order, &array.shape);
  if (!status.ok()) return status;
  if (fortran_order) {
    return error(StatusCode::kUnsupported, name,
                 "fortran_order=True is not supported (save np.ascontiguousarray(arr))");
  }
  Result<DType> dtype = dtype_from_descr(descr, name);
  if (!dtype.ok()) return dtype.status();
  array.dtype = *dtype;

  const int64_t expected = byte_size(array.shape, dtype_size(array.dtype));
  if (expected < 0) return malformed(name, "shape " + shape_literal(array.shape) + " overflows");
  const size_t available = size - prefix - header_size;
  if (static_cast<uint64_t>(expected) != available) {
    return error(
        StatusCode::kInvalidArgument, name,
        std::string(static_cast<uint64_t>(expected) > available ? "truncated" : "trailing bytes") +
            ": shape " + shape_literal(array.shape) + " of " + descr + " needs " +
            std::to_string(expected) + " data bytes, the file has " + std::to_string(available));
  }
  const uint8_t* payload = bytes + prefix + header_size;
  if (array.dtype == DType::kBool) {
    for (size_t i = 0; i < available; ++i) {
      if (payload[i] > 1) {
        return error(StatusCode::kInvalidArgument, name,
                     "bool element " + std::to_string(i) + " is " + std::to_string(payload[i]) +
                         ", not 0 or 1");
      }
    }
  }
  array.data.assign(payload, payload + available);
  return Result<NpyArray>(std::move(array));
}

Result<NpyArray> read_npy_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return error(StatusCode::kIoError, path, std::string("cannot open: ") + std::strerror(errno));
  }
  std::vector<uint8_t> bytes;
  uint8_t buffer[1 << 16];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    bytes.insert(bytes.end(), buffer, buffer + n);
  }
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return error(StatusCode::kIoError, path, "read error");
  return parse_npy(bytes.data(), bytes.size(), path);
}

Result<std::string> encode_npy(DType dtype, const std::vector<int64_t>& shape, const void* data) {
  const char* descr = npy_descr(dtype);
  if (descr == nullptr) {
    return Status(StatusCode::kInvalidArgument,
                  "encode_npy: bad dtype " + std::to_string(static_cast<int>(dtype)));
  }
  for (int64_t dim : shape) {
    if (dim < 0) return Status(StatusCode::kInvalidArgument, "encode_npy: negative dimension");
  }
  const int64_t bytes = byte_size(shape, dtype_size(dtype));
  if (bytes < 0) return Status(StatusCode::kInvalidArgument, "encode_npy: shape overflows");
  if (bytes > 0 && data == nullptr) {
    return Status(StatusCode::kInvalidArgument, "encode_npy: NULL data");
  }

  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape_literal(shape) + ", }";
  // Pad with spaces and end with '\n' so the data starts 64-byte aligned.
  int major = 1;
  size_t prefix = kMagicSize + 2 + 2;
  size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  if (total - prefix > 0xffff) {
    major = 2;
    prefix = kMagicSize + 2 + 4;
    total = (prefix + header.size() + 1 + 63) / 64 * 64;
  }
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';

  std::string out(kMagic, kMagicSize);
  out += static_cast<char>(major);
  out += '\0';
  const size_t length = header.size();
  for (size_t i = 0; i < (major == 1 ? 2u : 4u); ++i) {
    out += static_cast<char>((length >> (8 * i)) & 0xff);
  }
  out += header;
  if (bytes > 0) out.append(static_cast<const char*>(data), static_cast<size_t>(bytes));
  return Result<std::string>(std::move(out));
}

Status write_npy_file(const std::string& path, DType dtype, const std::vector<int64_t>& shape,
                      const void* data) {
  Result<std::string> encoded = encode_npy(dtype, shape, data);
  if (!encoded.ok()) return error(encoded.status().code(), path, encoded.status().message());
  const std::string temp = path + ".tmp";
  std::FILE* file = std::fopen(temp.c_str(), "wb");
  if (file == nullptr) {
    return error(StatusCode::kIoError, path, std::string("cannot create: ") + std::strerror(errno));
  }
  const bool written = std::fwrite(encoded->data(), 1, encoded->size(), file) == encoded->size();
  const bool closed = std::fclose(file) == 0;
  if (!written || !closed) {
    std::remove(temp.c_str());
    return error(StatusCode::kIoError, path, "write failed");
  }
  if (std::rename(temp.c_str(), path.c_str()) != 0) {
    const std::string reason = std::strerror(errno);
    std::remove(temp.c_str());
    return error(StatusCode::kIoError, path, "cannot rename from " + temp + ": " + reason);
  }
  return Status();
}

}  // namespace aotc::tools
