// aotc C++ API: Status, Result<T> and their propagation macros (see aotc.hpp).

#ifndef AOTC_STATUS_HPP_
#define AOTC_STATUS_HPP_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "aotc/aotc.h"

namespace aotc {

//===----------------------------------------------------------------------===//
// Status and Result
//===----------------------------------------------------------------------===//

// Same values as aotc_status_code_e.
enum class StatusCode : int {
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

// "INVALID_ARGUMENT", ... (from the runtime library).
inline const char* status_code_name(StatusCode code) {
  return aotc_status_code_name(static_cast<int>(code));
}

// An error code and the message that says what failed and where; OK when
// default-constructed. A plain value: thread-compatible, copyable.
class [[nodiscard]] Status final {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  // Takes ownership of |status| (may be NULL, meaning OK), copies its code and
  // message, and frees it with aotc_status_free().
  explicit Status(aotc_status_t* status) {
    if (status == nullptr) return;
    code_ = static_cast<StatusCode>(aotc_status_code(status));
    message_ = aotc_status_message(status);
    aotc_status_free(status);
    // A non-NULL status always means failure, whatever code it carries.
    if (code_ == StatusCode::kOk) code_ = StatusCode::kInternal;
  }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "OK", or "INVALID_ARGUMENT: <message>".
  std::string to_string() const {
    if (ok()) return "OK";
    return std::string(status_code_name(code_)) + ": " + message_;
  }
  // So that Status and Result<T> can be tested alike.
  const Status& status() const { return *this; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// A value of type T or an error Status. A Result built from an OK Status
// holds an INTERNAL error instead, so ok() and status() never disagree.
// Move-only. value() on an error Result is a programming error: it prints the
// error to stderr and aborts.
template <typename T>
class [[nodiscard]] Result final {
  static_assert(!std::is_same<std::decay_t<T>, Status>::value, "Result<Status> is meaningless");

 public:
  Result(T value) : state_(std::move(value)) {}        // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) {  // NOLINT: implicit by design
    if (std::get<Status>(state_).ok()) {
      state_ = Status(StatusCode::kInternal, "aotc::Result constructed from an OK status");
    }
  }
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;
  Result(Result&&) = default;
  Result& operator=(Result&&) = default;

  bool ok() const { return std::holds_alternative<T>(state_); }
  // OK when a value is held.
  const Status& status() const {
    static const Status kOkStatus;
    return ok() ? kOkStatus : std::get<Status>(state_);
  }

  T& value() & { return checked(); }
  const T& value() const& { return const_cast<Result*>(this)->checked(); }
  T&& value() && { return std::move(checked()); }
  T& operator*() & { return checked(); }
  const T& operator*() const& { return const_cast<Result*>(this)->checked(); }
  T&& operator*() && { return std::move(checked()); }
  T* operator->() { return &checked(); }
  const T* operator->() const { return &const_cast<Result*>(this)->checked(); }

 private:
  T& checked() {
    T* value = std::get_if<T>(&state_);
    if (value == nullptr) {
      std::fprintf(stderr, "aotc::Result::value() called on an error: %s\n",
                   std::get<Status>(state_).to_string().c_str());
      std::abort();
    }
    return *value;
  }
  std::variant<T, Status> state_;
};

}  // namespace aotc

// Propagation helpers for code using this API (standard C++17). Named
// AOTC_CPP_* so they never clash with the runtime's internal macros.
#define AOTC_CPP_RETURN_IF_ERROR(expr)                   \
  do {                                                   \
    ::aotc::Status aotc_cpp_status_ = (expr);            \
    if (!aotc_cpp_status_.ok()) return aotc_cpp_status_; \
  } while (0)

#define AOTC_CPP_CONCAT_INNER_(a, b) a##b
#define AOTC_CPP_CONCAT_(a, b) AOTC_CPP_CONCAT_INNER_(a, b)
// AOTC_CPP_ASSIGN_OR_RETURN(auto model, aotc::Model::load(package));
#define AOTC_CPP_ASSIGN_OR_RETURN(lhs, expr) \
  AOTC_CPP_ASSIGN_OR_RETURN_IMPL_(AOTC_CPP_CONCAT_(aotc_cpp_result_, __LINE__), lhs, expr)
#define AOTC_CPP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                    \
  if (!tmp.ok()) return tmp.status();                   \
  lhs = std::move(tmp).value()

namespace aotc {

// Checks that the runtime library implements the C API this header was
// written against: same major version, minor not older. Package::open calls
// it, so a mismatched libaotc is reported instead of misbehaving.
inline Status check_api_version() {
  const uint32_t version = aotc_api_version();
  const int64_t major = version >> 16, minor = version & 0xffffu;
  if (major != AOTC_API_VERSION_MAJOR || minor < AOTC_API_VERSION_MINOR) {
    return Status(StatusCode::kIncompatible,
                  "aotc.hpp was written for C API " + std::to_string(AOTC_API_VERSION_MAJOR) + "." +
                      std::to_string(AOTC_API_VERSION_MINOR) + " but the runtime library " +
                      "implements " + std::to_string(major) + "." + std::to_string(minor));
  }
  return Status();
}

}  // namespace aotc

#endif  // AOTC_STATUS_HPP_
