// Status and Result<T>: how every internal runtime function reports failure.
// A Status carries a code (aotc_status_code_e) and a message that says what
// and where; annotate() adds context on the way up, as IREE's status does.
// Nothing here throws; the C API turns a Status into an aotc_status_t*.
#pragma once

#include <cstdarg>
#include <string>
#include <utility>
#include <variant>

#include "aotc/aotc.h"

namespace aotc::internal {

enum class Code : int {
  kOk = AOTC_OK,
  kInternal = AOTC_INTERNAL,
  kInvalidArgument = AOTC_INVALID_ARGUMENT,
  kOutOfRange = AOTC_OUT_OF_RANGE,
  kUnsupported = AOTC_UNSUPPORTED,
  kNotFound = AOTC_NOT_FOUND,
  kResourceExhausted = AOTC_RESOURCE_EXHAUSTED,
  kDeviceError = AOTC_DEVICE_ERROR,
  kDeviceUnavailable = AOTC_DEVICE_UNAVAILABLE,
  kIoError = AOTC_IO_ERROR,
  kCorruptPackage = AOTC_CORRUPT_PACKAGE,
  kIncompatible = AOTC_INCOMPATIBLE,
};

class [[nodiscard]] Status final {
 public:
  Status() = default;  // OK
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // So Status and Result<T> can be tested alike.
  const Status& status() const { return *this; }

  // Prefixes context: "loading model 'mlp': <message>".
  Status annotate(const std::string& context) const& {
    if (ok()) return *this;
    return Status(code_, context + ": " + message_);
  }

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }

// printf-style constructor: Error(Code::kInvalidArgument, "input %d", i).
Status Error(Code code, const char* format, ...) __attribute__((format(printf, 2, 3)));

// Value or error. A Result built from an OK Status holds an Internal error
// instead, so ok() and status() never disagree.
template <typename T>
class [[nodiscard]] Result final {
 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) {  // NOLINT
    if (std::get<Status>(state_).ok())
      state_ = Status(Code::kInternal, "Result constructed from an OK status");
  }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Result(Result&&) = default;
  Result& operator=(Result&&) = default;

  bool ok() const { return std::holds_alternative<T>(state_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(state_);
  }
  T& value() & { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &std::get<T>(state_); }
  T& operator*() & { return std::get<T>(state_); }

 private:
  std::variant<T, Status> state_;
};

}  // namespace aotc::internal

// Declare-then-test propagation (standard C++17, no statement expressions).
#define AOTC_RETURN_IF_ERROR(expr)                  \
  do {                                              \
    ::aotc::internal::Status aotc_status_ = (expr); \
    if (!aotc_status_.ok()) return aotc_status_;    \
  } while (0)

#define AOTC_CONCAT_INNER_(a, b) a##b
#define AOTC_CONCAT_(a, b) AOTC_CONCAT_INNER_(a, b)
#define AOTC_ASSIGN_OR_RETURN(lhs, expr) \
  AOTC_ASSIGN_OR_RETURN_IMPL_(AOTC_CONCAT_(aotc_result_, __LINE__), lhs, expr)
#define AOTC_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()
