// Tests of the strict manifest JSON parser (json.cc).
#include <string>

#include "json.h"
#include "testing.h"

using aotc::internal::Json;

TEST(parses_all_types_in_order) {
  auto doc = Json::parse(
      " {\"z\": null, \"a\": [true, false, 1, -2.5e3, \"s\"], \"m\": {\"k\": {}}, \"e\": []}\n");
  EXPECT_OK(doc);
  if (!doc.ok()) return;
  EXPECT_TRUE(doc->is_object());
  const auto& members = doc->members();
  EXPECT_EQ(members.size(), 4u);
  EXPECT_EQ(members[0].first, "z");  // document order, not sorted
  EXPECT_EQ(members[1].first, "a");
  EXPECT_TRUE(members[0].second.is_null());
  const Json* a = doc->get("a");
  EXPECT_TRUE(a != nullptr && a->is_array() && a->items().size() == 5);
  if (a == nullptr || a->items().size() != 5) return;
  EXPECT_TRUE(a->items()[0].is_bool() && a->items()[0].as_bool());
  EXPECT_TRUE(a->items()[1].is_bool() && !a->items()[1].as_bool());
  EXPECT_EQ(a->items()[2].as_int(), 1);
  EXPECT_EQ(a->items()[3].as_number(), -2500.0);
  EXPECT_EQ(a->items()[4].as_string(), "s");
  EXPECT_TRUE(doc->get("m")->get("k")->is_object());
  EXPECT_TRUE(doc->get("e")->items().empty());
  EXPECT_TRUE(doc->get("missing") == nullptr);
  EXPECT_TRUE(a->get("x") == nullptr);  // not an object
}

TEST(scalar_documents) {
  EXPECT_OK(Json::parse("0"));
  EXPECT_OK(Json::parse("\"x\""));
  EXPECT_OK(Json::parse("null"));
  auto neg_zero = Json::parse("-0");
  EXPECT_OK(neg_zero);
  if (neg_zero.ok()) EXPECT_TRUE(neg_zero->is_int() && neg_zero->as_int() == 0);
}

TEST(string_escapes) {
  auto doc = Json::parse(R"(["a\"b\\c\/d\b\f\n\r\t", "\u00e9\u20ac", "\ud83d\ude00", "\u0000"])");
  EXPECT_OK(doc);
  if (!doc.ok()) return;
  EXPECT_EQ(doc->items()[0].as_string(), "a\"b\\c/d\b\f\n\r\t");
  EXPECT_EQ(doc->items()[1].as_string(), "\xc3\xa9\xe2\x82\xac");
  EXPECT_EQ(doc->items()[2].as_string(), "\xf0\x9f\x98\x80");
  EXPECT_EQ(doc->items()[3].as_string(), std::string("\0", 1));
  // Raw UTF-8 passes through.
  auto raw = Json::parse("\"\xe2\x82\xac \xf0\x9f\x98\x80\"");
  EXPECT_OK(raw);
  if (raw.ok()) EXPECT_EQ(raw->as_string(), "\xe2\x82\xac \xf0\x9f\x98\x80");
}

TEST(bad_strings) {
  EXPECT_ERROR_CONTAINS(Json::parse(R"("\ud83d")"), "lone high surrogate at byte 1");
  EXPECT_ERROR_CONTAINS(Json::parse(R"("\ud83d\u0041")"), "lone high surrogate");
  EXPECT_ERROR_CONTAINS(Json::parse(R"("\ude00")"), "lone low surrogate");
  EXPECT_ERROR_CONTAINS(Json::parse(R"("\u12G4")"), "invalid hex digit");
  EXPECT_ERROR_CONTAINS(Json::parse(R"("\u12")"), "\\u escape");
  EXPECT_ERROR_CONTAINS(Json::parse(R"("\x")"), "invalid escape sequence at byte 1");
  EXPECT_ERROR_CONTAINS(Json::parse("\"a\nb\""), "unescaped control character 0x0a");
  EXPECT_ERROR_CONTAINS(Json::parse("\"abc"), "unterminated string at byte 0");
  EXPECT_ERROR_CONTAINS(Json::parse("\"\\"), "unterminated string");
  EXPECT_ERROR_CONTAINS(Json::parse("\"\xc0\x80\""), "invalid UTF-8");          // overlong
  EXPECT_ERROR_CONTAINS(Json::parse("\"\xed\xa0\x80\""), "invalid UTF-8");      // surrogate
  EXPECT_ERROR_CONTAINS(Json::parse("\"\xe2\x82\""), "invalid UTF-8");          // truncated
  EXPECT_ERROR_CONTAINS(Json::parse("\"\xf4\x90\x80\x80\""), "invalid UTF-8");  // > U+10FFFF
  EXPECT_ERROR_CONTAINS(Json::parse("\"\xff\""), "invalid UTF-8");
}

TEST(numbers) {
  const char* good[] = {"0",     "-0",  "1",    "-1",   "10",         "1.5",
                        "-0.25", "1e5", "1E+5", "1e-5", "123.456e-7", "1.7976931348623157e308"};
  for (const char* text : good) EXPECT_OK(Json::parse(text));
  const char* bad[] = {"01",  "-01", "1.",       ".5",        "+1",   "-",    "1e",  "1e+",
                       "NaN", "nan", "Infinity", "-Infinity", "0x10", "1.e5", "--1", "1_000"};
  for (const char* text : bad) {
    auto r = Json::parse(text);
    EXPECT_TRUE(!r.ok());
  }
  EXPECT_ERROR_CONTAINS(Json::parse("1e400"), "number out of double range at byte 0");
  EXPECT_ERROR_CONTAINS(Json::parse("[1, 2.]"), "no digit after '.'");
}

TEST(integers) {
  auto doc = Json::parse(
      "[3, 3.0, 3.5, 9007199254740993, 9223372036854775807, -9223372036854775808, "
      "9223372036854775808, 1e3, -1e300, \"3\"]");
  EXPECT_OK(doc);
  if (!doc.ok()) return;
  const auto& v = doc->items();
  EXPECT_TRUE(v[0].is_int() && v[0].as_int() == 3);
  EXPECT_TRUE(v[1].is_int() && v[1].as_int() == 3);
  EXPECT_TRUE(!v[2].is_int());
  EXPECT_EQ(v[3].as_int(), 9007199254740993LL);  // exact past 2^53
  EXPECT_EQ(v[4].as_int(), INT64_MAX);
  EXPECT_TRUE(v[5].is_int() && v[5].as_int() == INT64_MIN);
  EXPECT_TRUE(!v[6].is_int());  // 2^63 does not fit
  EXPECT_EQ(v[6].as_int(), 0);
  EXPECT_TRUE(v[7].is_int() && v[7].as_int() == 1000);
  EXPECT_TRUE(!v[8].is_int());
  EXPECT_TRUE(!v[9].is_int());
}

TEST(structure_errors) {
  EXPECT_ERROR_CONTAINS(Json::parse(""), "manifest JSON: unexpected end of input");
  EXPECT_ERROR_CONTAINS(Json::parse("  "), "at byte 2");
  EXPECT_ERROR_CONTAINS(Json::parse("{} x"),
                        "manifest JSON: trailing characters after the document at byte 3");
  EXPECT_ERROR_CONTAINS(Json::parse("[1,]"),
                        "unexpected character ']' (expected a value) at byte 3");
  EXPECT_ERROR_CONTAINS(Json::parse("[1 2]"), "expected ',' or ']'");
  EXPECT_ERROR_CONTAINS(Json::parse("{,}"), "expected a string key");
  EXPECT_ERROR_CONTAINS(Json::parse("{\"a\":1,}"), "expected a string key");
  EXPECT_ERROR_CONTAINS(Json::parse("{\"a\" 1}"), "expected ':'");
  EXPECT_ERROR_CONTAINS(Json::parse("{1: 2}"), "expected a string key");
  EXPECT_ERROR_CONTAINS(Json::parse("{\"a\": 1"), "unexpected end of input");
  EXPECT_ERROR_CONTAINS(Json::parse("[1"), "unexpected end of input");
  EXPECT_ERROR_CONTAINS(Json::parse("tru"), "expected a value");
  EXPECT_ERROR_CONTAINS(Json::parse("nul"), "expected a value");
  EXPECT_ERROR_CONTAINS(Json::parse("truex"), "trailing characters");
  EXPECT_ERROR_CONTAINS(Json::parse("\xef\xbb\xbf{}"), "unexpected byte 0xef");  // BOM
  EXPECT_ERROR_CONTAINS(Json::parse("// c\n{}"), "unexpected character '/'");
  EXPECT_ERROR_CONTAINS(Json::parse("{}\f"), "trailing characters");
  auto r = Json::parse("[");
  EXPECT_TRUE(!r.ok() && r.status().code() == aotc::internal::Code::kCorruptPackage);
}

TEST(duplicate_keys) {
  EXPECT_ERROR_CONTAINS(Json::parse("{\"a\": 1, \"b\": 2, \"a\": 3}"),
                        "manifest JSON: duplicate key 'a' at byte 17");
  // Same key in different objects is fine; escapes are compared decoded.
  EXPECT_OK(Json::parse("{\"a\": {\"a\": 1}, \"b\": {\"a\": 2}}"));
  EXPECT_ERROR_CONTAINS(Json::parse(R"({"a": 1, "\u0061": 2})"), "duplicate key 'a'");
}

TEST(depth_limit) {
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  EXPECT_OK(Json::parse(nested(64)));
  EXPECT_ERROR_CONTAINS(Json::parse(nested(65)), "nesting deeper than 64 levels at byte 64");
  EXPECT_ERROR_CONTAINS(Json::parse(std::string(1000000, '[')), "nesting deeper");
  std::string objects;
  for (int i = 0; i < 65; ++i) objects += "{\"k\":";
  EXPECT_ERROR_CONTAINS(Json::parse(objects), "nesting deeper");
}

AOTC_TEST_MAIN()
