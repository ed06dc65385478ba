// A small strict JSON reader (RFC 8259) for manifest.json. Depth and size are
// bounded so hostile manifests cannot exhaust the stack.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "status.h"

namespace aotc::internal {

class Json final {
 public:
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

  // Errors are Code::kCorruptPackage naming the byte offset.
  static Result<Json> parse(std::string_view text);

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  bool as_bool() const { return bool_; }
  double as_number() const { return number_; }
  // True when the number is integral and fits in int64.
  bool is_int() const;
  // Exact for integer literals (no fraction or exponent) up to int64's range,
  // which doubles cannot hold past 2^53; 0 when !is_int().
  int64_t as_int() const;
  const std::string& as_string() const { return string_; }
  const std::vector<Json>& items() const { return array_; }
  // Object members in document order.
  const std::vector<std::pair<std::string, Json>>& members() const { return object_; }
  // Member |key| of an object; nullptr when absent or not an object.
  const Json* get(std::string_view key) const;

 private:
  friend class JsonParser;
  Type type_ = Type::kNull;
  bool bool_ = false;
  double number_ = 0;
  bool exact_int_ = false;  // number_ came from an integer literal held in int_
  int64_t int_ = 0;
  std::string string_;
  std::vector<Json> array_;
  std::vector<std::pair<std::string, Json>> object_;
};

}  // namespace aotc::internal
