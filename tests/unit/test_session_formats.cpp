// Unit tests of the igbinary format, several authenticated rules, "empty" as
// PHP writes it and big sessions read on in chunks (common/session_classifier).
//
// The corpus files tests/fuzz/corpus/session_classifier/<case>.<handler> are
// written by PHP 8.2's CLI (with php8.2-igbinary for igbinary) by
// tests/fuzz/make_session_corpus.sh.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "session_classifier.hpp"

namespace coupecircuit {
namespace {

using namespace std::literals;

constexpr std::size_t kKiB = 1024;

const std::filesystem::path kCorpus =
    std::filesystem::path(__FILE__).parent_path().parent_path() / "fuzz" / "corpus" / "session_classifier";

std::string corpus_file(const std::string& name) {
  std::ifstream in(kCorpus / name, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

ClassifierRule rules(std::string_view text, SessionFormat format = SessionFormat::automatic) {
  ClassifierRule base;
  base.format = format;
  auto r = parse_authenticated_rule(text, base);
  EXPECT_TRUE(r.has_value()) << text;
  return r.has_value() ? *r : base;
}

SessionFormat format_of(std::string_view handler) {
  auto f = parse_session_format(handler);
  return f.has_value() ? *f : SessionFormat::automatic;
}

struct Expected {
  SessionClass by_default;  // "* contains storage"
  SessionClass by_symfony;  // "_sf2_attributes contains _security_main"
  SessionClass by_several;  // "_sf2_attributes contains _security_*, has user_id"
};

using C = SessionClass;
const std::map<std::string, Expected, std::less<>> kCases{
    {"zend_authenticated", {C::authenticated, C::unknown, C::unknown}},
    {"zend_unknown", {C::unknown, C::unknown, C::unknown}},
    {"zend_anonymous", {C::anonymous, C::anonymous, C::anonymous}},
    {"zend_marker_last", {C::authenticated, C::unknown, C::unknown}},
    {"symfony_authenticated", {C::anonymous, C::authenticated, C::authenticated}},
    {"symfony_anonymous", {C::anonymous, C::anonymous, C::anonymous}},
    {"objects", {C::authenticated, C::anonymous, C::anonymous}},
    {"serializable_enum", {C::anonymous, C::anonymous, C::anonymous}},
    {"references", {C::authenticated, C::anonymous, C::anonymous}},
    {"nested_scalars", {C::anonymous, C::anonymous, C::anonymous}},
    {"adversarial_strings", {C::anonymous, C::anonymous, C::anonymous}},
    {"adversarial_authenticated", {C::authenticated, C::anonymous, C::anonymous}},
    {"big_then_marker", {C::authenticated, C::anonymous, C::anonymous}},
    {"empty", {C::empty, C::empty, C::empty}},
    {"two_firewalls", {C::anonymous, C::anonymous, C::authenticated}},
    {"plain_user_id", {C::anonymous, C::anonymous, C::authenticated}},
    {"string_backrefs", {C::authenticated, C::anonymous, C::anonymous}},
    {"big_cart_then_marker", {C::authenticated, C::anonymous, C::anonymous}},
};
constexpr std::array kHandlers{"php"sv, "php_serialize"sv, "php_binary"sv, "igbinary"sv};

// A value in memory, handed out as a file would be: by offset, in pieces
// no larger than `piece`.
class MemoryReader final : public SessionReader {
 public:
  explicit MemoryReader(std::string_view data, std::size_t piece = SIZE_MAX) : data_(data), piece_(piece) {}
  std::size_t read_at(std::uint64_t offset, char* into, std::size_t size) noexcept override {
    ++reads;
    if (offset >= data_.size()) return 0;
    const std::size_t n = std::min({size, piece_, data_.size() - static_cast<std::size_t>(offset)});
    std::memcpy(into, data_.data() + offset, n);
    bytes += n;
    return n;
  }
  std::size_t reads = 0;
  std::size_t bytes = 0;

 private:
  std::string_view data_;
  std::size_t piece_;
};

// Classifies data through a window of `window` bytes, reading on as needed.
SessionClass classify_chunked(std::string_view data, std::size_t window, std::uint64_t limit,
                              const ClassifierRule& rule, MemoryReader* reader_out = nullptr,
                              std::size_t piece = SIZE_MAX) {
  std::vector<char> buffer(window);
  MemoryReader reader(data, piece);
  SessionStream stream;
  stream.window = buffer;
  stream.size = data.size();
  stream.limit = limit;
  stream.reader = &reader;
  stream.filled =
      reader.read_at(0, buffer.data(), std::min<std::size_t>(window, std::min<std::uint64_t>(data.size(), limit)));
  const SessionClass c = classify_session(stream, rule);
  if (reader_out != nullptr) {
    reader_out->reads = reader.reads;
    reader_out->bytes = reader.bytes;
  }
  return c;
}

// ---------------------------------------------------------------------------
// Files written by real PHP, every handler including igbinary

TEST(SessionFormatsCorpus, EveryCaseOfEveryHandlerAutomaticAndFixed) {
  const ClassifierRule by_symfony = rules("_sf2_attributes contains _security_main");
  const ClassifierRule by_several = rules("_sf2_attributes contains _security_*, has user_id");
  int files = 0;
  for (const auto& [name, expected] : kCases) {
    for (const std::string_view handler : kHandlers) {
      const std::string file = name + "." + std::string(handler);
      ASSERT_TRUE(std::filesystem::exists(kCorpus / file)) << file;
      const std::string data = corpus_file(file);
      for (const SessionFormat f : {SessionFormat::automatic, format_of(handler)}) {
        ClassifierRule d;
        d.format = f;
        ClassifierRule s = by_symfony;
        s.format = f;
        ClassifierRule m = by_several;
        m.format = f;
        EXPECT_EQ(classify_session(data, false, d), expected.by_default) << file << " " << to_string(f);
        EXPECT_EQ(classify_session(data, false, s), expected.by_symfony) << file << " " << to_string(f);
        EXPECT_EQ(classify_session(data, false, m), expected.by_several) << file << " " << to_string(f);
      }
      ++files;
    }
  }
  EXPECT_EQ(files, static_cast<int>(kCases.size() * kHandlers.size()));
}

TEST(SessionFormatsCorpus, IgbinaryFilesStartWithTheVersion2Header) {
  for (const auto& [name, expected] : kCases) {
    const std::string data = corpus_file(name + ".igbinary");
    ASSERT_GE(data.size(), 5U) << name;
    EXPECT_EQ(data.substr(0, 4), "\0\0\0\2"sv) << name;
  }
  // An empty session: the header and an empty array8.
  EXPECT_EQ(corpus_file("empty.igbinary"), "\0\0\0\2\x14\x00"sv);
  EXPECT_EQ(corpus_file("empty.php_serialize"), "a:0:{}");
}

TEST(SessionFormatsCorpus, OtherFixedFormatsReadIgbinaryAsUnknown) {
  for (const auto& [name, expected] : kCases) {
    const std::string data = corpus_file(name + ".igbinary");
    for (const SessionFormat f : {SessionFormat::php, SessionFormat::php_serialize, SessionFormat::php_binary}) {
      ClassifierRule r;
      r.format = f;
      EXPECT_EQ(classify_session(data, false, r), SessionClass::unknown) << name << " as " << to_string(f);
    }
    // And igbinary reads the others as unknown (empty files aside).
    for (const std::string_view handler : {"php"sv, "php_serialize"sv, "php_binary"sv}) {
      const std::string other = corpus_file(name + "." + std::string(handler));
      if (other.empty()) continue;
      ClassifierRule r;
      r.format = SessionFormat::igbinary;
      EXPECT_EQ(classify_session(other, false, r), SessionClass::unknown) << name << "." << handler;
    }
  }
}

// ---------------------------------------------------------------------------
// igbinary by hand: every type, back-references, bounds

std::string igb(std::string_view body, char version = '\2') {
  return "\0\0\0"s + version + std::string(body);
}
std::string s8(std::string_view s) {
  return "\x11"s + static_cast<char>(s.size()) + std::string(s);
}

TEST(SessionFormatsIgbinary, Version1And2Headers) {
  const std::string body = "\x14\x01"s + s8("vzn") + "\x14\x01"s + s8("storage") + "\x00"s;
  EXPECT_EQ(classify_session(igb(body, '\2'), false, ClassifierRule{}), SessionClass::authenticated);
  EXPECT_EQ(classify_session(igb(body, '\1'), false, ClassifierRule{}), SessionClass::authenticated);
  EXPECT_EQ(classify_session(igb(body, '\3'), false, ClassifierRule{}), SessionClass::unknown);
  EXPECT_EQ(classify_session("\1\0\0\2"s + body, false, ClassifierRule{}), SessionClass::unknown);
}

TEST(SessionFormatsIgbinary, EveryScalarType) {
  std::string values;
  int n = 0;
  for (const std::string& v :
       {"\x00"s, "\x04"s, "\x05"s, "\x06\x7f"s, "\x07\x01"s, "\x08\x01\x02"s, "\x09\x01\x02"s, "\x0a\x01\x02\x03\x04"s,
        "\x0b\x01\x02\x03\x04"s, "\x20\x01\x02\x03\x04\x05\x06\x07\x08"s, "\x21\x01\x02\x03\x04\x05\x06\x07\x08"s,
        "\x0c\x3f\xf8\x00\x00\x00\x00\x00\x00"s, "\x0d"s, s8("abc"), "\x12\x00\x02xy"s, "\x13\x00\x00\x00\x01z"s,
        "\x26\x00\x00\x00\x00\x00\x00\x00\x02zz"s, "\x0e\x00"s}) {
    values += "\x06"s + static_cast<char>(n++) + v;  // integer keys 0, 1, ...
  }
  const std::string session =
      igb("\x14\x02"s + s8("list") + "\x14"s + static_cast<char>(n) + values + s8("x") + "\x00"s);
  ClassifierRule r;
  r.format = SessionFormat::igbinary;
  EXPECT_EQ(classify_session(session, false, r), SessionClass::anonymous);
  EXPECT_EQ(classify_session(session, false, ClassifierRule{}), SessionClass::anonymous);
  // A marker after all of them is still found.
  const std::string marked = igb("\x14\x02"s + s8("list") + "\x14"s + static_cast<char>(n) + values + s8("vzn") +
                                 "\x14\x01"s + s8("storage") + "\x05"s);
  EXPECT_EQ(classify_session(marked, false, r), SessionClass::authenticated);
}

TEST(SessionFormatsIgbinary, StringBackReferencesCarryTheName) {
  // "storage" first as a value (string #1), then as a key by back-reference.
  const std::string session = igb("\x14\x02"s + s8("label") + s8("storage") + s8("vzn") + "\x14\x01\x0e\x01\x05"s);
  EXPECT_EQ(classify_session(session, false, ClassifierRule{}), SessionClass::authenticated);
  // The same back-reference to another string is not the marker.
  const std::string other = igb("\x14\x02"s + s8("label") + s8("storage") + s8("vzn") + "\x14\x01\x0e\x00\x05"s);
  EXPECT_EQ(classify_session(other, false, ClassifierRule{}), SessionClass::anonymous);
  // A top-level key by back-reference: the container and the unknown key.
  ClassifierRule sf = rules("_sf2_attributes contains _security_main");
  const std::string sf2 =
      igb("\x14\x02"s + s8("a") + s8("_sf2_attributes") + "\x0e\x01\x14\x01"s + s8("_security_main") + "\x05"s);
  EXPECT_EQ(classify_session(sf2, false, sf), SessionClass::authenticated);
  const std::string zf = igb("\x14\x02"s + s8("a") + s8("__ZF") + "\x0e\x01\x00"s);
  EXPECT_EQ(classify_session(zf, false, ClassifierRule{}), SessionClass::unknown);
  // Out of range: no such string yet.
  const std::string bad = igb("\x14\x01"s + s8("vzn") + "\x14\x01\x0e\x01\x05"s);
  EXPECT_EQ(classify_session(bad, false, ClassifierRule{}), SessionClass::unknown);
  const std::string bad16 = igb("\x14\x01"s + s8("vzn") + "\x14\x01\x0f\x00\x01\x05"s);
  EXPECT_EQ(classify_session(bad16, false, ClassifierRule{}), SessionClass::unknown);
}

TEST(SessionFormatsIgbinary, ManyMatchingStringsStillResolveOrFailSafe) {
  // 100 distinct names that the glob rule matches, then a back-reference to
  // the first as a container key: the table keeps 64 of them, so a
  // reference past those is unknown, never anonymous.
  const ClassifierRule r = rules("* contains _security_*");
  std::string values;
  for (int i = 0; i < 100; ++i) values += "\x06"s + static_cast<char>(i) + s8("_security_" + std::to_string(i));
  const std::string first = igb("\x14\x02"s + s8("list") + "\x14\x64"s + values + s8("c") + "\x14\x01\x0e\x01\x00"s);
  EXPECT_EQ(classify_session(first, false, r), SessionClass::authenticated);
  const std::string late = igb("\x14\x02"s + s8("list") + "\x14\x64"s + values + s8("c") + "\x14\x01\x0e\x64\x00"s);
  EXPECT_NE(classify_session(late, false, r), SessionClass::anonymous);
}

TEST(SessionFormatsIgbinary, ObjectsReferencesAndHoles) {
  // Object with a protected property "\0*\0storage".
  const std::string prop = "\0*\0storage"s;
  const std::string object = igb("\x14\x01"s + s8("u") + "\x17\x04User\x14\x01"s + s8(prop) + "\x06\x01"s);
  EXPECT_EQ(classify_session(object, false, ClassifierRule{}), SessionClass::authenticated);
  // Class name by back-reference (object_id8) and objref to the object.
  const std::string objects =
      igb("\x14\x03"s + s8("a") + "\x17\x04User\x14\x00"s + s8("b") + "\x1a\x01\x14\x00"s + s8("c") + "\x22\x01"s);
  EXPECT_EQ(classify_session(objects, false, ClassifierRule{}), SessionClass::anonymous);
  // objref to a value not numbered: malformed.
  const std::string bad_ref = igb("\x14\x01"s + s8("a") + "\x22\x05"s);
  EXPECT_EQ(classify_session(bad_ref, false, ClassifierRule{}), SessionClass::unknown);
  // A PHP reference (&) to a scalar, then a ref8 to it.
  const std::string refs = igb("\x14\x02"s + s8("a") + "\x25\x06\x01"s + s8("b") + "\x01\x01"s);
  EXPECT_EQ(classify_session(refs, false, ClassifierRule{}), SessionClass::anonymous);
  // Serializable data is opaque; enum case by name.
  const std::string ser = igb("\x14\x02"s + s8("a") +
                              "\x17\x03"
                              "Bag\x1d\x05storag"s +
                              s8("e") + "\x17\x04Suit\x27"s + s8("Hearts"));
  EXPECT_EQ(classify_session(ser, false, ClassifierRule{}), SessionClass::unknown);  // "storag" is 6 bytes, not 5
  const std::string ser_ok = igb("\x14\x02"s + s8("a") +
                                 "\x17\x03"
                                 "Bag\x1d\x06storag"s +
                                 s8("e") + "\x17\x04Suit\x27"s + s8("Hearts"));
  EXPECT_EQ(classify_session(ser_ok, false, ClassifierRule{}), SessionClass::anonymous);
  // A null key is a hole: no value follows.
  const std::string hole = igb("\x14\x02"s + s8("vzn") + "\x14\x02\x00"s + s8("storage") + "\x00"s + "\x00"s);
  EXPECT_EQ(classify_session(hole, false, ClassifierRule{}), SessionClass::authenticated);
}

TEST(SessionFormatsIgbinary, MalformedAndTruncatedAreUnknown) {
  for (const std::string& bad : {
           igb(""),
           igb("\x14"),
           igb("\x06\x01"),
           igb(s8("x")),
           igb("\x14\x01"s + s8("a") + "\x00\x00"s),  // trailing
           igb("\x14\x01"s + s8("a") + "\xff"s),
           igb("\x14\x01\x0c\x00"s),
           igb("\x14\x02"s + s8("a") + "\x00"s),
           igb("\x17\x04User\x14\x00"s),  // the session is an object, not an array
           igb("\x14\x01"s + s8("a") +
               "\x11\x05"
               "ab"s),
           igb("\x14\x01"s + s8("a") + "\x26\xff\xff\xff\xff\xff\xff\xff\xff"s),
           igb("\x16\xff\xff\xff\xff"s),
           "\0\0\0"s,
           "\0\0\0\2"s,
       }) {
    EXPECT_EQ(classify_session(bad, false, ClassifierRule{}), SessionClass::unknown) << testing::PrintToString(bad);
  }
}

TEST(SessionFormatsIgbinary, DeepNestingIsBounded) {
  std::string deep;
  for (int i = 0; i < 64; ++i) deep += "\x14\x01\x06\x00"s;
  const std::string ok_value = "\x14\x00"s;
  // depth 1 (session) + 63 nested + 1 empty array = 65 frames: over the bound.
  EXPECT_EQ(classify_session(igb("\x14\x01"s + s8("a") + deep.substr(4) + ok_value), false, ClassifierRule{}),
            SessionClass::unknown);
  std::string fine;
  for (int i = 0; i < 40; ++i) fine += "\x14\x01\x06\x00"s;
  EXPECT_EQ(classify_session(igb("\x14\x01"s + s8("a") + fine + ok_value), false, ClassifierRule{}),
            SessionClass::anonymous);
  std::string huge;
  for (int i = 0; i < 100000; ++i) huge += "\x14\x01\x06\x00"s;
  EXPECT_EQ(classify_session(igb("\x14\x01"s + s8("a") + huge), false, ClassifierRule{}), SessionClass::unknown);
}

TEST(SessionFormatsIgbinary, EveryPrefixOfARealSession) {
  for (const std::string_view name : {"zend_authenticated"sv, "string_backrefs"sv, "objects"sv}) {
    const std::string full = corpus_file(std::string(name) + ".igbinary");
    bool seen_authenticated = false;
    for (std::size_t len = 0; len < full.size(); ++len) {
      const SessionClass c = classify_session(std::string_view(full).substr(0, len), true, ClassifierRule{});
      ASSERT_TRUE(c == SessionClass::unknown || c == SessionClass::authenticated) << name << " at " << len;
      // Once authenticated, every longer prefix stays so.
      if (seen_authenticated) {
        EXPECT_EQ(c, SessionClass::authenticated) << name << " at " << len;
      }
      seen_authenticated = seen_authenticated || c == SessionClass::authenticated;
    }
    EXPECT_TRUE(seen_authenticated) << name;
  }
}

// ---------------------------------------------------------------------------
// Rules

TEST(SessionFormatsRules, GlobAndHas) {
  const ClassifierRule r = rules("_sf2_attributes contains _security_*, has user_id, has Zend_Auth*");
  ASSERT_EQ(r.authenticated.size(), 3U);
  EXPECT_EQ(to_string(r.authenticated[0]), "_sf2_attributes contains _security_*");
  EXPECT_EQ(to_string(r.authenticated[1]), "has user_id");
  EXPECT_EQ(to_string(r.authenticated[2]), "has Zend_Auth*");
  EXPECT_EQ(classify_session("_sf2_attributes|a:1:{s:15:\"_security_admin\";N;}", false, r), C::authenticated);
  EXPECT_EQ(classify_session("_sf2_attributes|a:1:{s:10:\"_security_\";N;}", false, r), C::authenticated);
  EXPECT_EQ(classify_session("_sf2_attributes|a:1:{s:9:\"_security\";N;}", false, r), C::anonymous);
  EXPECT_EQ(classify_session("_sf2_meta|a:1:{s:15:\"_security_admin\";N;}", false, r), C::anonymous);
  EXPECT_EQ(classify_session("user_id|i:42;", false, r), C::authenticated);
  EXPECT_EQ(classify_session("user_id|N;", false, r), C::authenticated);  // exists, whatever its value
  EXPECT_EQ(classify_session("user_idx|i:42;", false, r), C::anonymous);
  EXPECT_EQ(classify_session("x|a:1:{s:7:\"user_id\";i:1;}", false, r), C::anonymous);  // not top level
  EXPECT_EQ(classify_session("a:1:{s:7:\"user_id\";i:42;}", false, r), C::authenticated);
  EXPECT_EQ(classify_session("\x07user_idi:42;"sv, false, r), C::authenticated);
  EXPECT_EQ(classify_session("Zend_Auth_main|a:0:{}", false, r), C::authenticated);
  // has: a key inside a value string does not count.
  EXPECT_EQ(classify_session("x|s:7:\"user_id\";", false, r), C::anonymous);
}

TEST(SessionFormatsRules, GlobOnTheContainer) {
  const ClassifierRule r = rules("vzn_* contains storage");
  EXPECT_EQ(classify_session("vzn_abc|a:1:{s:7:\"storage\";N;}", false, r), C::authenticated);
  EXPECT_EQ(classify_session("vz|a:1:{s:7:\"storage\";N;}", false, r), C::anonymous);
  EXPECT_EQ(classify_session("vzn_|a:1:{s:7:\"storage\";N;}", false, r), C::authenticated);
}

TEST(SessionFormatsRules, EachRuleLooksOnlyInItsContainer) {
  const ClassifierRule r = rules("a contains x, b contains y");
  EXPECT_EQ(classify_session("a|a:1:{s:1:\"y\";N;}b|a:1:{s:1:\"x\";N;}", false, r), C::anonymous);
  EXPECT_EQ(classify_session("a|a:1:{s:1:\"y\";N;}b|a:1:{s:1:\"y\";N;}", false, r), C::authenticated);
}

TEST(SessionFormatsRules, ParseErrorsAndLimits) {
  for (const std::string_view bad : {"has"sv, "has a b"sv, "a contains"sv, "has user_id,, x"sv, ","sv}) {
    const auto r = parse_authenticated_rule(bad);
    EXPECT_FALSE(r.has_value()) << bad;
  }
  std::string many = "has k0";
  for (int i = 1; i < 32; ++i) many += ", has k" + std::to_string(i);
  EXPECT_TRUE(parse_authenticated_rule(many).has_value());
  EXPECT_FALSE(parse_authenticated_rule(many + ", has k32").has_value());
  const auto multi = parse_authenticated_rule("has a\nhas b\n\n, has c");
  ASSERT_TRUE(multi.has_value());
  EXPECT_EQ(multi->authenticated.size(), 3U);
}

TEST(SessionFormatsRules, ThirtyTwoRulesAllWork) {
  std::string text = "c0 contains m0";
  for (int i = 1; i < 32; ++i) text += ", c" + std::to_string(i) + " contains m" + std::to_string(i);
  const ClassifierRule r = rules(text);
  for (int i = 0; i < 32; ++i) {
    // Appended, not "c" + std::to_string(i): GCC 12 at -O3 warns (-Wrestrict) on the latter.
    const std::string c = std::string("c").append(std::to_string(i));
    const std::string m = std::string("m").append(std::to_string(i));
    const std::string s = c + "|a:1:{s:" + std::to_string(m.size()) + ":\"" + m + "\";N;}";
    EXPECT_EQ(classify_session(s, false, r), C::authenticated) << i;
  }
}

// ---------------------------------------------------------------------------
// Empty as PHP writes it

TEST(SessionFormatsEmpty, NoVariableAtAllIsEmptyInEveryFormat) {
  EXPECT_EQ(classify_session("", false, ClassifierRule{}), C::empty);
  EXPECT_EQ(classify_session("a:0:{}", false, ClassifierRule{}), C::empty);
  EXPECT_EQ(classify_session("\0\0\0\2\x14\x00"sv, false, ClassifierRule{}), C::empty);
  EXPECT_EQ(classify_session("\0\0\0\1\x14\x00"sv, false, ClassifierRule{}), C::empty);
  for (const SessionFormat f : {SessionFormat::php_serialize, SessionFormat::igbinary}) {
    ClassifierRule r;
    r.format = f;
    EXPECT_EQ(classify_session(f == SessionFormat::igbinary ? "\0\0\0\2\x14\x00"sv : "a:0:{}"sv, false, r), C::empty);
  }
  // Cut or malformed is not empty.
  EXPECT_EQ(classify_session("a:0:{}", true, ClassifierRule{}), C::unknown);
  EXPECT_EQ(classify_session("a:0:{", false, ClassifierRule{}), C::unknown);
  EXPECT_EQ(classify_session("\0\0\0\2\x14"sv, false, ClassifierRule{}), C::unknown);
  // One variable, even null or an empty array, is not empty.
  EXPECT_EQ(classify_session("a:1:{s:1:\"x\";N;}", false, ClassifierRule{}), C::anonymous);
  EXPECT_EQ(classify_session("x|a:0:{}", false, ClassifierRule{}), C::anonymous);
  EXPECT_EQ(classify_session(igb("\x14\x01"s + s8("x") + "\x00"s), false, ClassifierRule{}), C::anonymous);
}

// ---------------------------------------------------------------------------
// Big sessions, read on in chunks

TEST(SessionFormatsChunks, MarkerPastTheFirstChunkIsFound) {
  for (const std::string_view handler : kHandlers) {
    const std::string file = "big_cart_then_marker." + std::string(handler);
    const std::string data = corpus_file(file);
    ASSERT_GT(data.size(), std::size_t{64} << 10) << file;
    ClassifierRule fixed;
    fixed.format = format_of(handler);
    for (const ClassifierRule& r : {ClassifierRule{}, fixed}) {
      MemoryReader counted("");
      EXPECT_EQ(classify_chunked(data, 64 * kKiB, 1024 * kKiB, r, &counted), C::authenticated) << file;
      EXPECT_GT(counted.reads, 1U) << file;
      // Capped before the marker: unknown, as before.
      EXPECT_EQ(classify_chunked(data, 64 * kKiB, 64 * kKiB, r), C::unknown) << file;
      // A small window works too: only keys must fit in it.
      EXPECT_EQ(classify_chunked(data, 4096, 1024 * kKiB, r), C::authenticated) << file;
    }
  }
}

TEST(SessionFormatsChunks, LongStringValuesAreSkippedUnread) {
  // A 3 MB string value: skipped by its length with a 4 KiB window, so the
  // marker after it is found and the bytes read stay far below the value.
  const std::string blob(3U << 20, 'x');
  const std::string php = "blob|s:" + std::to_string(blob.size()) + ":\"" + blob + "\";vzn|a:1:{s:7:\"storage\";N;}";
  MemoryReader counted("");
  EXPECT_EQ(classify_chunked(php, 4096, 4U << 20, ClassifierRule{}, &counted), C::authenticated);
  EXPECT_LT(counted.bytes, 64 * kKiB);
  const std::string big =
      "\x13"s + static_cast<char>(0) + static_cast<char>(0x30) + static_cast<char>(0) + static_cast<char>(0) + blob;
  const std::string ig = igb("\x14\x02"s + s8("blob") + big + s8("vzn") + "\x14\x01"s + s8("storage") + "\x00"s);
  EXPECT_EQ(classify_chunked(ig, 4096, 4U << 20, ClassifierRule{}, &counted), C::authenticated);
  EXPECT_LT(counted.bytes, 64 * kKiB);
}

TEST(SessionFormatsChunks, ChunkedEqualsWholeOnEveryCorpusFile) {
  const ClassifierRule by_several = rules("_sf2_attributes contains _security_*, has user_id");
  for (const auto& entry : std::filesystem::directory_iterator(kCorpus)) {
    const std::string data = corpus_file(entry.path().filename().string());
    for (const ClassifierRule& r : {ClassifierRule{}, by_several}) {
      const SessionClass whole = classify_session(data, false, r);
      for (const std::size_t window : {std::size_t{4096}, std::size_t{65536}}) {
        EXPECT_EQ(classify_chunked(data, window, 16U << 20, r), whole) << entry.path() << " window " << window;
      }
      // Short reads (7 bytes at a time) move the window in the middle of
      // every token: a key must never be read from moved bytes.
      EXPECT_EQ(classify_chunked(data, 4096, 16U << 20, r, nullptr, 7), whole) << entry.path() << " by 7 bytes";
    }
  }
}

// fuzz_session_classifier found it: a key read through a window that moved
// (reading the closing quote brought more bytes in) was compared from moved
// bytes. The input is tests/fuzz/corpus/session_classifier/
// regression-key-read-after-window-moved (references.php_serialize).
TEST(SessionFormatsFuzzRegression, AKeyIsNeverReadFromBytesTheWindowMoved) {
  const std::string data = corpus_file("regression-key-read-after-window-moved");
  ASSERT_FALSE(data.empty());
  ClassifierRule fixed;
  fixed.format = SessionFormat::php_serialize;
  ASSERT_EQ(classify_session(data, false, fixed), C::authenticated);
  for (const std::size_t window : {std::size_t{32}, std::size_t{64}, std::size_t{100}}) {
    EXPECT_EQ(classify_chunked(data, window, data.size(), fixed, nullptr, 7), C::authenticated) << window;
  }
}

TEST(SessionFormatsChunks, AValueShorterThanAnnouncedIsUnknown) {
  // The reader ends early (file shrunk, read error): never anonymous.
  const std::string data = "a|s:10000:\"" + std::string(10000, 'x') + "\";b|N;";
  std::vector<char> buffer(4096);
  MemoryReader reader(std::string_view(data).substr(0, 8000));
  SessionStream stream;
  stream.window = buffer;
  stream.size = data.size();
  stream.limit = 1U << 20;
  stream.reader = &reader;
  stream.filled = reader.read_at(0, buffer.data(), buffer.size());
  EXPECT_EQ(classify_session(stream, ClassifierRule{}), C::unknown);
}

TEST(SessionFormatsChunks, KeyLongerThanTheWindowIsUnknownNotAMiss) {
  const std::string key(5000, 'k');
  const std::string data = key + "|a:1:{s:7:\"storage\";N;}";
  EXPECT_EQ(classify_chunked(data, 4096, 1U << 20, rules("* contains storage", SessionFormat::php)), C::unknown);
  EXPECT_EQ(classify_chunked(data, 8192, 1U << 20, rules("* contains storage", SessionFormat::php)), C::authenticated);
}

}  // namespace
}  // namespace coupecircuit
