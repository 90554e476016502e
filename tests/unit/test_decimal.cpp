// Unit tests of common/decimal.cpp: strict parsing of counts and centi
// values, and their rendering into fixed buffers.
#include "decimal.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

namespace coupecircuit {
namespace {

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();

// ---- parse_unsigned

TEST(ParseUnsigned, AcceptsPlainDigits) {
  EXPECT_EQ(parse_unsigned("0", 10).value(), 0U);
  EXPECT_EQ(parse_unsigned("7", 10).value(), 7U);
  EXPECT_EQ(parse_unsigned("42", 100).value(), 42U);
  EXPECT_EQ(parse_unsigned("007", 100).value(), 7U);
  EXPECT_EQ(parse_unsigned("1000000000000", kMaxSessionsValue).value(), kMaxSessionsValue);
}

TEST(ParseUnsigned, RejectsEmpty) {
  const auto parsed = parse_unsigned("", 100);
  ASSERT_FALSE(parsed.has_value());
  EXPECT_NE(parsed.error().message.find("empty"), std::string::npos) << parsed.error().message;
}

TEST(ParseUnsigned, RejectsSignsSpacesAndOtherCharacters) {
  for (const std::string_view text :
       {"-1", "+1", " 1", "1 ", "1\n", "\t1", "1a", "a1", "0x10", "1.0", "1,0", "1e3", "-0", "١"}) {
    const auto parsed = parse_unsigned(text, 1000);
    EXPECT_FALSE(parsed.has_value()) << "accepted \"" << text << "\"";
    if (!parsed) {
      EXPECT_NE(parsed.error().message.find(std::string(text)), std::string::npos)
          << "the message should quote the text: " << parsed.error().message;
    }
  }
}

TEST(ParseUnsigned, RejectsEmbeddedNul) {
  const std::string text(
      "12\0"
      "3",
      4);
  EXPECT_FALSE(parse_unsigned(text, 100000).has_value());
}

// A text parsed against a maximum: the value it gives, or kRejected.
constexpr std::optional<std::uint64_t> kRejected;

struct Bounded {
  std::string_view text;
  std::uint64_t max;
  std::optional<std::uint64_t> expected;
};

void expect_bounded(Result<std::uint64_t> (*parse)(std::string_view, std::uint64_t),
                    std::initializer_list<Bounded> cases) {
  for (const auto& [text, max, expected] : cases) {
    const auto parsed = parse(text, max);
    EXPECT_EQ(parsed.has_value(), expected.has_value()) << text << " against " << max;
    if (parsed && expected) {
      EXPECT_EQ(*parsed, *expected) << text << " against " << max;
    }
  }
}

TEST(ParseUnsigned, EnforcesTheMaximumExactly) {
  expect_bounded(parse_unsigned,
                 {Bounded{"1000", 1000, 1000U}, Bounded{"1001", 1000, kRejected}, Bounded{"10000", 1000, kRejected},
                  Bounded{"15", 15, 15U}, Bounded{"16", 15, kRejected}, Bounded{"19", 15, kRejected},
                  Bounded{"1000000000001", kMaxSessionsValue, kRejected}});
}

TEST(ParseUnsigned, RejectsASingleDigitAboveTheMaximum) {
  // A digit larger than the maximum must not wrap around in the bound check.
  expect_bounded(parse_unsigned, {Bounded{"9", 8, kRejected}, Bounded{"5", 0, kRejected}, Bounded{"4", 3, kRejected},
                                  Bounded{"0", 0, 0U}, Bounded{"000", 0, 0U}, Bounded{"8", 8, 8U}});
}

TEST(ParseUnsigned, HandlesTheFullRangeWithoutOverflow) {
  EXPECT_EQ(parse_unsigned("18446744073709551615", kU64Max).value(), kU64Max);
  EXPECT_FALSE(parse_unsigned("18446744073709551616", kU64Max).has_value());
  EXPECT_FALSE(parse_unsigned("18446744073709551620", kU64Max).has_value());
  EXPECT_FALSE(parse_unsigned("99999999999999999999999", kU64Max).has_value());
  EXPECT_FALSE(parse_unsigned("184467440737095516150", kU64Max).has_value());
  const auto too_large = parse_unsigned("1001", 1000);
  ASSERT_FALSE(too_large.has_value());
  EXPECT_NE(too_large.error().message.find("1000"), std::string::npos) << too_large.error().message;
}

// ---- parse_centi

TEST(ParseCenti, AcceptsZeroOneOrTwoDecimals) {
  EXPECT_EQ(parse_centi("4").value(), 400U);
  EXPECT_EQ(parse_centi("4.5").value(), 450U);
  EXPECT_EQ(parse_centi("4.50").value(), 450U);
  EXPECT_EQ(parse_centi("4.05").value(), 405U);
  EXPECT_EQ(parse_centi("0.05").value(), 5U);
  EXPECT_EQ(parse_centi("0").value(), 0U);
  EXPECT_EQ(parse_centi("0.00").value(), 0U);
  EXPECT_EQ(parse_centi("12.34").value(), 1234U);
  EXPECT_EQ(parse_centi("007.10").value(), 710U);
}

TEST(ParseCenti, RejectsMalformedText) {
  for (const std::string_view text :
       {"",    ".",    "4.",   ".5",    "-1",  "+1",  "-0.5", " 4",  "4 ",   "4.5 ", "4.5x",
        "4.x", "4.-5", "4..5", "4.5.6", "1e3", "4,5", "abc",  "0x1", "4.+5", "4. 5"}) {
    EXPECT_FALSE(parse_centi(text).has_value()) << "accepted \"" << text << "\"";
  }
}

TEST(ParseCenti, RejectsMoreThanTwoDecimals) {
  for (const std::string_view text : {"4.505", "4.500", "0.001", "1.2345"}) {
    const auto parsed = parse_centi(text);
    ASSERT_FALSE(parsed.has_value()) << "accepted \"" << text << "\"";
    EXPECT_NE(parsed.error().message.find("two decimals"), std::string::npos) << parsed.error().message;
  }
}

TEST(ParseCenti, EnforcesTheDefaultMaximum) {
  EXPECT_EQ(parse_centi("1000000").value(), kMaxLoadCenti);
  EXPECT_EQ(parse_centi("1000000.00").value(), kMaxLoadCenti);
  EXPECT_FALSE(parse_centi("1000000.01").has_value());
  EXPECT_FALSE(parse_centi("1000001").has_value());
  EXPECT_FALSE(parse_centi("99999999999999999999999").has_value());
}

TEST(ParseCenti, EnforcesACustomMaximum) {
  expect_bounded(parse_centi, {Bounded{"4.50", 450, 450U}, Bounded{"4.51", 450, kRejected},
                               Bounded{"5", 450, kRejected}, Bounded{"0.99", 99, 99U}, Bounded{"1", 99, kRejected},
                               Bounded{"0", 0, 0U}, Bounded{"0.01", 0, kRejected}});
}

TEST(ParseCenti, DoesNotWrapNearTheTopOfTheRange) {
  // 184467440737095516.15 is exactly 2^64 - 1 hundredths.
  EXPECT_EQ(parse_centi("184467440737095516.15", kU64Max).value(), kU64Max);
  EXPECT_FALSE(parse_centi("184467440737095516.16", kU64Max).has_value());
  EXPECT_FALSE(parse_centi("184467440737095516.99", kU64Max).has_value());
  EXPECT_FALSE(parse_centi("184467440737095517", kU64Max).has_value());
}

// ---- rendering

// Renders into a roomy buffer and checks that the length returned is the
// terminated text's.
template <std::size_t (*Render)(char*, std::size_t, std::uint64_t) noexcept>
std::string rendered(std::uint64_t value) {
  char buffer[32];
  std::memset(buffer, 'X', sizeof buffer);
  const std::size_t length = Render(buffer, sizeof buffer, value);
  EXPECT_EQ(length, std::strlen(buffer));
  return {buffer, length};
}

constexpr auto render_u = rendered<render_unsigned>;
constexpr auto render_c = rendered<render_centi>;

struct Rendered {
  std::uint64_t value;
  std::string_view text;
};

void expect_renders(std::string (*render)(std::uint64_t), std::initializer_list<Rendered> cases) {
  for (const auto& [value, text] : cases) EXPECT_EQ(render(value), text) << value;
}

TEST(RenderUnsigned, RendersDecimalDigits) {
  expect_renders(render_u, {Rendered{0, "0"}, Rendered{7, "7"}, Rendered{10, "10"}, Rendered{500, "500"},
                            Rendered{kMaxSessionsValue, "1000000000000"}, Rendered{kU64Max, "18446744073709551615"}});
}

TEST(RenderUnsigned, NeverWritesPastTheCapacityAndAlwaysTerminates) {
  char buffer[8];
  std::memset(buffer, 'X', sizeof buffer);
  EXPECT_EQ(render_unsigned(buffer, 0, 12345), 0U);
  EXPECT_EQ(buffer[0], 'X') << "capacity 0 must not write";

  EXPECT_EQ(render_unsigned(buffer, 1, 12345), 0U);
  EXPECT_EQ(buffer[0], '\0');
  EXPECT_EQ(buffer[1], 'X');

  std::memset(buffer, 'X', sizeof buffer);
  const std::size_t length = render_unsigned(buffer, 4, 12345);
  EXPECT_EQ(length, 3U);
  EXPECT_EQ(buffer[3], '\0');
  EXPECT_EQ(buffer[4], 'X');
  EXPECT_EQ(std::strlen(buffer), length);

  std::memset(buffer, 'X', sizeof buffer);
  EXPECT_EQ(render_unsigned(buffer, 6, 12345), 5U);
  EXPECT_STREQ(buffer, "12345");
  EXPECT_EQ(buffer[6], 'X');
}

TEST(RenderCenti, RendersTwoDecimals) {
  expect_renders(render_c, {Rendered{0, "0.00"}, Rendered{5, "0.05"}, Rendered{50, "0.50"}, Rendered{100, "1.00"},
                            Rendered{405, "4.05"}, Rendered{450, "4.50"}, Rendered{1234, "12.34"},
                            Rendered{kMaxLoadCenti, "1000000.00"}, Rendered{kU64Max, "184467440737095516.15"}});
}

TEST(RenderCenti, FitsTheSnapshotTextFieldsAndStaysWithinCapacity) {
  // Snapshot text fields are 16 bytes: the largest load must fit.
  char text[16];
  EXPECT_EQ(render_centi(text, sizeof text, kMaxLoadCenti), 10U);
  EXPECT_STREQ(text, "1000000.00");

  char buffer[8];
  for (std::size_t capacity = 0; capacity <= 6; ++capacity) {
    std::memset(buffer, 'X', sizeof buffer);
    const std::size_t length = render_centi(buffer, capacity, 450);
    if (capacity == 0) {
      EXPECT_EQ(length, 0U);
      EXPECT_EQ(buffer[0], 'X');
      continue;
    }
    EXPECT_LT(length, capacity) << "capacity " << capacity;
    EXPECT_EQ(buffer[length], '\0') << "capacity " << capacity;
    EXPECT_EQ(std::strlen(buffer), length) << "capacity " << capacity;
    for (std::size_t i = capacity; i < sizeof buffer; ++i) EXPECT_EQ(buffer[i], 'X') << "capacity " << capacity;
  }
  std::memset(buffer, 'X', sizeof buffer);
  EXPECT_EQ(render_centi(buffer, 5, 450), 4U);
  EXPECT_STREQ(buffer, "4.50");
}

TEST(CentiToString, RoundTripsThroughParseCenti) {
  EXPECT_EQ(centi_to_string(450), "4.50");
  EXPECT_EQ(centi_to_string(kU64Max), "184467440737095516.15");
  for (std::uint64_t centi = 0; centi <= 2000; ++centi) {
    const std::string text = centi_to_string(centi);
    const auto parsed = parse_centi(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, centi) << text;
  }
  for (const std::uint64_t centi : {kMaxLoadCenti - 1, kMaxLoadCenti, std::uint64_t{123456789}}) {
    const auto parsed = parse_centi(centi_to_string(centi), kU64Max);
    ASSERT_TRUE(parsed.has_value());
    EXPECT_EQ(*parsed, centi);
  }
}

TEST(RenderUnsigned, RoundTripsThroughParseUnsigned) {
  for (const std::uint64_t value : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{9}, std::uint64_t{10},
                                    std::uint64_t{99}, std::uint64_t{100}, kMaxSessionsValue, kU64Max - 1, kU64Max}) {
    const auto parsed = parse_unsigned(render_u(value), kU64Max);
    ASSERT_TRUE(parsed.has_value()) << value;
    EXPECT_EQ(*parsed, value);
  }
}

}  // namespace
}  // namespace coupecircuit
