// Minimal test helpers for the runtime's C++ tests: CHECK-style macros that
// record failures and a main() driver. Each test file defines TESTs and ends
// with AOTC_TEST_MAIN().
#pragma once

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace aotc_testing {

struct TestCase {
  const char* name;
  std::function<void()> fn;
};
inline std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}
inline int& failures() {
  static int count = 0;
  return count;
}
struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, fn}); }
};
inline int run_all() {
  int failed_tests = 0;
  for (auto& test : registry()) {
    int before = failures();
    test.fn();
    bool ok = failures() == before;
    std::printf("[%s] %s\n", ok ? "PASS" : "FAIL", test.name);
    failed_tests += ok ? 0 : 1;
  }
  std::printf("%zu passed, %d failed\n", registry().size() - failed_tests, failed_tests);
  return failed_tests == 0 ? 0 : 1;
}

}  // namespace aotc_testing

#define TEST(name)                                                        \
  static void test_##name();                                              \
  static ::aotc_testing::Registrar registrar_##name(#name, &test_##name); \
  static void test_##name()

#define EXPECT_TRUE(cond)                                               \
  do {                                                                  \
    if (!(cond)) {                                                      \
      std::printf("  %s:%d: expected %s\n", __FILE__, __LINE__, #cond); \
      ++::aotc_testing::failures();                                     \
    }                                                                   \
  } while (0)

#define EXPECT_EQ(a, b) EXPECT_TRUE((a) == (b))

// Status/Result helpers: message printed on failure.
#define EXPECT_OK(expr)                                                  \
  do {                                                                   \
    auto&& s_ = (expr);                                                  \
    if (!s_.ok()) {                                                      \
      std::printf("  %s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, \
                  s_.status().message().c_str());                        \
      ++::aotc_testing::failures();                                      \
    }                                                                    \
  } while (0)

// Expects an error whose message contains |needle|.
#define EXPECT_ERROR_CONTAINS(expr, needle)                                           \
  do {                                                                                \
    auto&& s_ = (expr);                                                               \
    if (s_.ok()) {                                                                    \
      std::printf("  %s:%d: %s unexpectedly succeeded\n", __FILE__, __LINE__, #expr); \
      ++::aotc_testing::failures();                                                   \
    } else if (s_.status().message().find(needle) == std::string::npos) {             \
      std::printf("  %s:%d: message '%s' lacks '%s'\n", __FILE__, __LINE__,           \
                  s_.status().message().c_str(), std::string(needle).c_str());        \
      ++::aotc_testing::failures();                                                   \
    }                                                                                 \
  } while (0)

#define AOTC_TEST_MAIN() \
  int main() { return ::aotc_testing::run_all(); }
