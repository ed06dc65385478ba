// A strict RFC 8259 parser: no comments, no trailing commas, no NaN, no BOM,
// no duplicate keys, valid UTF-8 only. A manifest is machine-written, so any
// deviation means corruption and is reported with its byte offset.
#include "json.h"

#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <set>
#include <system_error>
#include <utility>

namespace aotc::internal {
namespace {

// Nesting is bounded so recursion (parse and destruction) cannot exhaust the
// stack; size is bounded so a hostile manifest cannot make the parse tree,
// about a hundred times larger than the text, exhaust memory.
constexpr int kMaxDepth = 64;
constexpr size_t kMaxTextSize = size_t{64} << 20;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Length of the well-formed UTF-8 sequence at the start of |s| (Unicode
// Table 3-7: no overlongs, no surrogates, nothing past U+10FFFF), or 0.
size_t utf8_sequence_length(std::string_view s) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  auto in = [&](size_t i, unsigned lo, unsigned hi) {
    return i < s.size() && byte(i) >= lo && byte(i) <= hi;
  };
  unsigned lead = byte(0);
  if (lead >= 0xC2 && lead <= 0xDF) return in(1, 0x80, 0xBF) ? 2 : 0;
  if (lead >= 0xE0 && lead <= 0xEF) {
    unsigned lo = lead == 0xE0 ? 0xA0 : 0x80;
    unsigned hi = lead == 0xED ? 0x9F : 0xBF;
    return in(1, lo, hi) && in(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (lead >= 0xF0 && lead <= 0xF4) {
    unsigned lo = lead == 0xF0 ? 0x90 : 0x80;
    unsigned hi = lead == 0xF4 ? 0x8F : 0xBF;
    return in(1, lo, hi) && in(2, 0x80, 0xBF) && in(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

// Keys from the document, made safe to quote in an error message.
std::string printable(std::string_view s) {
  constexpr size_t kMaxShown = 100;
  std::string out;
  for (size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c >= 0x7F || c == '\'' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  if (s.size() > kMaxShown) out += "...";
  return out;
}

}  // namespace

// Recursive descent over the text; each parse_* leaves pos_ just past what it
// read. Named (not anonymous) because Json befriends it.
class JsonParser final {
 public:
  explicit JsonParser(std::string_view text) : text_(text) {}

  Status parse_document(Json* out) {
    if (text_.size() > kMaxTextSize) {
      return fail_at(0, "document of %zu bytes exceeds the %zu-byte limit", text_.size(),
                     kMaxTextSize);
    }
    skip_whitespace();
    AOTC_RETURN_IF_ERROR(parse_value(out, 0));
    skip_whitespace();
    if (pos_ != text_.size()) return fail_at(pos_, "trailing characters after the document");
    return OkStatus();
  }

 private:
  Status fail_at(size_t pos, const char* format, ...) __attribute__((format(printf, 3, 4))) {
    char what[256];
    va_list args;
    va_start(args, format);
    std::vsnprintf(what, sizeof(what), format, args);
    va_end(args);
    return Error(Code::kCorruptPackage, "manifest JSON: %s at byte %zu", what, pos);
  }

  // Error for whatever sits at pos_ when something else was expected.
  Status unexpected(const char* expected) {
    if (at_end()) return fail_at(pos_, "unexpected end of input (expected %s)", expected);
    unsigned char c = static_cast<unsigned char>(text_[pos_]);
    if (c >= 0x20 && c < 0x7F) {
      return fail_at(pos_, "unexpected character '%c' (expected %s)", c, expected);
    }
    return fail_at(pos_, "unexpected byte 0x%02x (expected %s)", c, expected);
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }

  void skip_whitespace() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r')) {
      ++pos_;
    }
  }

  Status parse_value(Json* out, int depth) {
    if (at_end()) return unexpected("a value");
    switch (peek()) {
      case '{':
        return parse_object(out, depth + 1);
      case '[':
        return parse_array(out, depth + 1);
      case '"':
        out->type_ = Json::Type::kString;
        return parse_string(&out->string_);
      case 't':
        return parse_literal("true", Json::Type::kBool, true, out);
      case 'f':
        return parse_literal("false", Json::Type::kBool, false, out);
      case 'n':
        return parse_literal("null", Json::Type::kNull, false, out);
      default:
        if (peek() == '-' || is_digit(peek())) return parse_number(out);
        return unexpected("a value");
    }
  }

  Status parse_literal(std::string_view word, Json::Type type, bool value, Json* out) {
    if (text_.substr(pos_, word.size()) != word) return unexpected("a value");
    pos_ += word.size();
    out->type_ = type;
    out->bool_ = value;
    return OkStatus();
  }

  Status check_depth(int depth) {
    if (depth > kMaxDepth) return fail_at(pos_, "nesting deeper than %d levels", kMaxDepth);
    return OkStatus();
  }

  Status parse_array(Json* out, int depth) {
    AOTC_RETURN_IF_ERROR(check_depth(depth));
    out->type_ = Json::Type::kArray;
    ++pos_;  // '['
    skip_whitespace();
    if (!at_end() && peek() == ']') {
      ++pos_;
      return OkStatus();
    }
    while (true) {
      skip_whitespace();
      out->array_.emplace_back();
      AOTC_RETURN_IF_ERROR(parse_value(&out->array_.back(), depth));
      skip_whitespace();
      if (at_end()) return unexpected("',' or ']'");
      char c = text_[pos_++];
      if (c == ']') return OkStatus();
      if (c != ',') {
        --pos_;
        return unexpected("',' or ']'");
      }
    }
  }

  Status parse_object(Json* out, int depth) {
    AOTC_RETURN_IF_ERROR(check_depth(depth));
    out->type_ = Json::Type::kObject;
    ++pos_;  // '{'
    skip_whitespace();
    if (!at_end() && peek() == '}') {
      ++pos_;
      return OkStatus();
    }
    std::set<std::string, std::less<>> keys;
    while (true) {
      skip_whitespace();
      if (at_end() || peek() != '"') return unexpected("a string key");
      size_t key_pos = pos_;
      std::string key;
      AOTC_RETURN_IF_ERROR(parse_string(&key));
      if (!keys.insert(key).second) {
        return fail_at(key_pos, "duplicate key '%s'", printable(key).c_str());
      }
      skip_whitespace();
      if (at_end() || peek() != ':') return unexpected("':'");
      ++pos_;
      skip_whitespace();
      out->object_.emplace_back(std::move(key), Json());
      AOTC_RETURN_IF_ERROR(parse_value(&out->object_.back().second, depth));
      skip_whitespace();
      if (at_end()) return unexpected("',' or '}'");
      char c = text_[pos_++];
      if (c == '}') return OkStatus();
      if (c != ',') {
        --pos_;
        return unexpected("',' or '}'");
      }
    }
  }

  // Reads 4 hex digits after "\u" at pos_.
  Status parse_hex4(uint32_t* out) {
    if (text_.size() - pos_ < 4) return fail_at(pos_, "truncated \\u escape");
    uint32_t value = 0;
    for (int i = 0; i < 4; ++i) {
      int digit = hex_value(text_[pos_ + i]);
      if (digit < 0) return fail_at(pos_ + i, "invalid hex digit in \\u escape");
      value = value * 16 + static_cast<uint32_t>(digit);
    }
    pos_ += 4;
    *out = value;
    return OkStatus();
  }

  // pos_ is just past "\u": a code point, joining a surrogate pair.
  Status parse_unicode_escape(std::string* out) {
    size_t escape_pos = pos_ - 2;
    uint32_t cp = 0;
    AOTC_RETURN_IF_ERROR(parse_hex4(&cp));
    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail_at(escape_pos, "lone low surrogate");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (text_.substr(pos_, 2) != "\\u") return fail_at(escape_pos, "lone high surrogate");
      pos_ += 2;
      uint32_t low = 0;
      AOTC_RETURN_IF_ERROR(parse_hex4(&low));
      if (low < 0xDC00 || low > 0xDFFF) return fail_at(escape_pos, "lone high surrogate");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    }
    append_utf8(cp, out);
    return OkStatus();
  }

  Status parse_escape(std::string* out) {
    ++pos_;  // '\'
    if (at_end()) return fail_at(pos_, "unterminated string");
    char c = text_[pos_++];
    switch (c) {
      case '"':
      case '\\':
      case '/':
        out->push_back(c);
        return OkStatus();
      case 'b':
        out->push_back('\b');
        return OkStatus();
      case 'f':
        out->push_back('\f');
        return OkStatus();
      case 'n':
        out->push_back('\n');
        return OkStatus();
      case 'r':
        out->push_back('\r');
        return OkStatus();
      case 't':
        out->push_back('\t');
        return OkStatus();
      case 'u':
        return parse_unicode_escape(out);
      default:
        return fail_at(pos_ - 2, "invalid escape sequence");
    }
  }

  Status parse_string(std::string* out) {
    size_t start = pos_;
    ++pos_;  // opening quote
    while (true) {
      if (at_end()) return fail_at(start, "unterminated string");
      unsigned char c = static_cast<unsigned char>(peek());
      if (c == '"') {
        ++pos_;
        return OkStatus();
      }
      if (c == '\\') {
        AOTC_RETURN_IF_ERROR(parse_escape(out));
      } else if (c < 0x20) {
        return fail_at(pos_, "unescaped control character 0x%02x in string", c);
      } else if (c < 0x80) {
        out->push_back(static_cast<char>(c));
        ++pos_;
      } else {
        size_t length = utf8_sequence_length(text_.substr(pos_));
        if (length == 0) return fail_at(pos_, "invalid UTF-8 in string");
        out->append(text_.data() + pos_, length);
        pos_ += length;
      }
    }
  }

  void skip_digits() {
    while (!at_end() && is_digit(peek())) ++pos_;
  }

  // Checks the RFC 8259 number grammar first, since from_chars accepts more
  // ("inf", leading zeros, no digit after '.'). from_chars rather than strtod:
  // strtod follows the host process's locale, which may use ',' as the
  // decimal point.
  Status parse_number(Json* out) {
    size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (at_end() || !is_digit(peek())) return fail_at(start, "invalid number");
    if (peek() == '0') {
      ++pos_;
    } else {
      skip_digits();
    }
    bool integral = true;
    if (!at_end() && peek() == '.') {
      integral = false;
      ++pos_;
      if (at_end() || !is_digit(peek()))
        return fail_at(start, "invalid number: no digit after '.'");
      skip_digits();
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(peek())) {
        return fail_at(start, "invalid number: no digit in exponent");
      }
      skip_digits();
    }
    const char* first = text_.data() + start;
    const char* last = text_.data() + pos_;
    double value = 0;
    auto parsed = std::from_chars(first, last, value);
    // Both overflow and total underflow are refused (RFC 8259 section 6 lets
    // parsers limit range); no manifest value comes near either.
    if (parsed.ec == std::errc::result_out_of_range) {
      return fail_at(start, "number out of double range");
    }
    if (parsed.ec != std::errc() || parsed.ptr != last) {
      return fail_at(start, "invalid number");
    }
    out->type_ = Json::Type::kNumber;
    out->number_ = value;
    if (integral) {
      int64_t exact = 0;
      auto as_int = std::from_chars(first, last, exact);
      out->exact_int_ = as_int.ec == std::errc() && as_int.ptr == last;
      out->int_ = out->exact_int_ ? exact : 0;
    }
    return OkStatus();
  }

  std::string_view text_;
  size_t pos_ = 0;
};

Result<Json> Json::parse(std::string_view text) {
  Json root;
  JsonParser parser(text);
  AOTC_RETURN_IF_ERROR(parser.parse_document(&root));
  return root;
}

bool Json::is_int() const {
  if (type_ != Type::kNumber) return false;
  if (exact_int_) return true;
  // [-2^63, 2^63) is exactly representable at both ends as doubles.
  return std::isfinite(number_) && std::trunc(number_) == number_ &&
         number_ >= -9223372036854775808.0 && number_ < 9223372036854775808.0;
}

int64_t Json::as_int() const {
  if (exact_int_) return int_;
  return is_int() ? static_cast<int64_t>(number_) : 0;
}

const Json* Json::get(std::string_view key) const {
  if (type_ != Type::kObject) return nullptr;
  for (const auto& member : object_) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

}  // namespace aotc::internal
