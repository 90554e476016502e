// One rule for threshold values: the directive CoupeCircuitThreshold, the
// [agent] sessions / load keys of coupecircuitd.conf, `coupecircuitctl
// threshold set` (the real binary) and the state file are fed the same table
// and must all accept or all refuse each value. A refused value leaves the
// state file untouched and makes coupecircuitctl exit 2.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../stress/run_process.hpp"
#include "daemon_config.hpp"
#include "decimal.hpp"
#include "module_config.hpp"
#include "state_file.hpp"
#include "thresholds.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

struct ThresholdCase {
  const char* kind;
  const char* text;
  bool accepted;
};

const std::vector<ThresholdCase> kCases = {
    {"sessions", "1", true},
    {"sessions", "500", true},
    {"sessions", "1000000000000", true},
    {"sessions", "0", false},
    {"sessions", "00", false},
    {"sessions", "1000000000001", false},
    {"sessions", "-1", false},
    {"sessions", "1.5", false},
    {"sessions", "", false},
    {"sessions", "abc", false},
    {"load", "0.01", true},
    {"load", "4", true},
    {"load", "4.5", true},
    {"load", "1000000", true},
    {"load", "0", false},
    {"load", "0.00", false},
    {"load", "0.0", false},
    {"load", "1000000.01", false},
    {"load", "1.234", false},
    {"load", "-1", false},
    {"load", "", false},
};

std::string describe(const ThresholdCase& c) { return std::string(c.kind) + " \"" + c.text + "\""; }

TEST(ThresholdRule, TheSharedFunctionFollowsTheTable) {
  for (const auto& c : kCases) {
    auto kind = parse_threshold_kind(c.kind);
    ASSERT_TRUE(kind.has_value());
    EXPECT_EQ(parse_threshold_value(*kind, c.text).has_value(), c.accepted) << describe(c);
  }
  EXPECT_FALSE(parse_threshold_kind("cpu").has_value());
  EXPECT_TRUE(parse_threshold_kind("LOAD").has_value());
}

TEST(ThresholdRule, TheDirectiveFollowsTheTable) {
  for (const auto& c : kCases) {
    auto parsed = module::parse_threshold(c.kind, c.text, "");
    EXPECT_EQ(parsed.has_value(), c.accepted) << describe(c);
    if (!parsed) {
      EXPECT_EQ(parsed.error().message.rfind("CoupeCircuitThreshold", 0), 0U) << parsed.error().message;
    }
  }
}

TEST(ThresholdRule, TheAgentConfigFollowsTheTable) {
  for (const auto& c : kCases) {
    const std::string text = std::string("[agent]\n") + c.kind + " = " + c.text + "\n";
    auto parsed = parse_daemon_config_text(text, "agent.conf");
    EXPECT_EQ(parsed.has_value(), c.accepted) << describe(c);
    if (!parsed) {
      EXPECT_NE(parsed.error().message.find("agent.conf:2:"), std::string::npos) << parsed.error().message;
    }
  }
}

TEST(ThresholdRule, TheStateFileFollowsTheTable) {
  for (const auto& c : kCases) {
    nlohmann::json value;
    if (std::string(c.kind) == "load") {
      value = c.text;
    } else {
      // The state file holds sessions as a JSON number: only the texts that
      // are numbers can be written there at all.
      auto number = parse_unsigned(c.text, ~0ULL);
      if (!number) continue;
      value = *number;
    }
    const nlohmann::json document = {{"version", 1}, {"thresholds", {{"global", {{c.kind, value}}}}}};
    EXPECT_EQ(parse_state(document.dump()).has_value(), c.accepted) << describe(c);
  }
}

TEST(ThresholdRule, TheCliFollowsTheTableAndRefusesWithoutWriting) {
  test::TempDir dir;
  const std::string state = dir / "state";
  const auto ctl = [&](const std::vector<std::string>& arguments) {
    std::vector<std::string> command = {COUPECIRCUITCTL_BINARY, "--state", state, "--snapshot", dir / "snapshot",
                                        "--wait", "0"};
    command.insert(command.end(), arguments.begin(), arguments.end());
    return test::run_process(command);
  };
  ASSERT_EQ(ctl({"threshold", "set", "sessions", "7"}).exit_code, 0);
  for (const auto& c : kCases) {
    const std::string before = test::read_file(state);
    const auto result = ctl({"threshold", "set", c.kind, c.text});
    if (c.accepted) {
      EXPECT_EQ(result.exit_code, 0) << describe(c) << result.describe();
    } else {
      EXPECT_EQ(result.exit_code, 2) << describe(c) << result.describe();
      EXPECT_EQ(test::read_file(state), before) << describe(c) << " changed the state file";
    }
  }
}

}  // namespace
}  // namespace coupecircuit
