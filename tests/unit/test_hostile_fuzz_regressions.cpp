// Inputs the libFuzzer targets (tests/fuzz/fuzz_*.cpp) found failing, kept
// as regression tests, and the properties those targets check, on a few
// hand-picked hostile inputs.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "decimal.hpp"
#include "state_file.hpp"

namespace coupecircuit {
namespace {

// fuzz_state_file: a cut reason that passes validate_cut_reason must be
// writable. Before the fix, bytes that are not UTF-8 passed the check and
// serialize_state threw nlohmann type_error 316 (coupecircuitctl aborted on
// `cut on --reason` with a Latin-1 reason). The fuzzer's input is kept in
// tests/fuzz/corpus/state_file/regression-reason-not-utf8.
TEST(FuzzRegressionStateFile, ACutReasonThatIsNotUtf8IsRejectedNotThrown) {
  for (const std::string_view reason :
       {std::string_view("op\xe9ration"), std::string_view("100000\xff\xff\xff"),
        std::string_view("\xc0\xaf"),           // overlong '/'
        std::string_view("\xe0\x80\xaf"),       // overlong, three bytes
        std::string_view("\xed\xa0\x80"),       // UTF-16 surrogate
        std::string_view("\xf4\x90\x80\x80"),   // above U+10FFFF
        std::string_view("\xf8\x88\x80\x80\x80"),
        std::string_view("trailing \xc3"),      // cut sequence
        std::string_view("\x80 continuation first")}) {
    SCOPED_TRACE(std::string(reason));
    EXPECT_FALSE(validate_cut_reason(reason).has_value());
    ControlState state;
    state.cut_active = true;
    state.cut_reason = std::string(reason);
    // What coupecircuitctl does with a reason: validate, then serialize and
    // read back before saving.
    if (validate_cut_reason(state.cut_reason)) {
      std::string text;
      EXPECT_NO_THROW(text = serialize_state(state));
    }
  }
}

TEST(FuzzRegressionStateFile, Utf8ReasonsStillRoundTrip) {
  for (const std::string_view reason :
       {std::string_view("maintenance"), std::string_view("\xc3\xa9t\xc3\xa9 \xe2\x80\x94 r\xc3\xa9seau"),
        std::string_view("\xf0\x9f\x98\x80"), std::string_view("\xef\xbf\xbd"), std::string_view("\xf4\x8f\xbf\xbf"),
        std::string_view("\xed\x9f\xbf"), std::string_view("\xee\x80\x80"), std::string_view("")}) {
    SCOPED_TRACE(std::string(reason));
    ASSERT_TRUE(validate_cut_reason(reason).has_value());
    ControlState state;
    state.cut_active = true;
    state.cut_reason = std::string(reason);
    state.cut_since = 1'700'000'000;
    auto again = parse_state(serialize_state(state));
    ASSERT_TRUE(again.has_value()) << again.error().message;
    EXPECT_EQ(*again, state);
  }
}

}  // namespace
}  // namespace coupecircuit
