// HAProxy agent answers from a payload.
#include <gtest/gtest.h>

#include "agent.hpp"
#include "daemon_config.hpp"
#include "snapshot_layout.hpp"

namespace cc = coupecircuit;

namespace {

cc::snapshot::Payload with_sessions(std::uint64_t sessions) {
  cc::snapshot::Payload payload{};
  payload.sessions_active = sessions;
  return payload;
}

}  // namespace

TEST(AgentAnswer, FullWeightWithoutThresholds) {
  EXPECT_EQ(cc::agent_answer(with_sessions(1000), cc::AgentSettings{}), "up ready 100%\n");
}

TEST(AgentAnswer, WeightFallsFromHalfwayToTheThreshold) {
  cc::AgentSettings settings;
  settings.sessions_trip = 100;
  EXPECT_EQ(cc::agent_answer(with_sessions(50), settings), "up ready 100%\n");
  EXPECT_EQ(cc::agent_answer(with_sessions(75), settings), "up ready 50%\n");
  EXPECT_EQ(cc::agent_answer(with_sessions(90), settings), "up ready 20%\n");
  EXPECT_EQ(cc::agent_answer(with_sessions(99), settings), "up ready 2%\n");
  EXPECT_EQ(cc::agent_answer(with_sessions(100), settings), "drain\n");
}

TEST(AgentAnswer, TheHigherRatioOfSessionsAndLoadWins) {
  cc::AgentSettings settings;
  settings.sessions_trip = 100;
  settings.load_trip_centi = 400;
  auto payload = with_sessions(10);
  payload.load_centi[0] = 300;  // 75 % of the load threshold
  EXPECT_EQ(cc::agent_answer(payload, settings), "up ready 50%\n");
}

TEST(AgentAnswer, GlobalOverrideWinsOverTheConfiguredThreshold) {
  cc::AgentSettings settings;
  settings.sessions_trip = 1000;
  auto payload = with_sessions(10);
  payload.global_override.has_sessions = 1;
  payload.global_override.sessions = 10;
  EXPECT_EQ(cc::agent_answer(payload, settings), "drain\n");
}

TEST(AgentAnswer, ManualCutDrainsByDefaultOrMaintWhenConfigured) {
  auto payload = with_sessions(0);
  payload.flags |= cc::snapshot::kFlagCutActive;
  cc::AgentSettings settings;
  EXPECT_EQ(cc::agent_answer(payload, settings), "drain\n");
  settings.maint_on_cut = true;
  EXPECT_EQ(cc::agent_answer(payload, settings), "maint\n");
}

TEST(AgentConfig, OnCutIsDrainOrMaint) {
  auto drain = cc::parse_daemon_config_text("[agent]\non_cut = drain\n", "t.conf");
  ASSERT_TRUE(drain);
  EXPECT_FALSE(drain->agent.maint_on_cut);
  auto maint = cc::parse_daemon_config_text("[agent]\non_cut = maint\n", "t.conf");
  ASSERT_TRUE(maint);
  EXPECT_TRUE(maint->agent.maint_on_cut);
  auto bad = cc::parse_daemon_config_text("[agent]\nport = 1\non_cut = stop\n", "t.conf");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.rfind("t.conf:3:", 0), 0U) << bad.error().message;
}

TEST(AgentAnswer, SessionsUnknownLeavesThemOutAndCapsTheWeight) {
  cc::AgentSettings settings;
  settings.sessions_trip = 100;
  auto payload = with_sessions(0);
  payload.flags |= cc::snapshot::kFlagScanFailed;  // the scanner cannot read the session store
  // Not drained (a blind scanner is no overload), not reported idle either.
  EXPECT_EQ(cc::agent_answer(payload, settings), "up ready 50%\n");
  payload.sessions_active = 1000;  // counts from before the failure are not judged
  EXPECT_EQ(cc::agent_answer(payload, settings), "up ready 50%\n");
  settings.load_trip_centi = 400;
  payload.load_centi[0] = 400;  // the load is still known and still drains
  EXPECT_EQ(cc::agent_answer(payload, settings), "drain\n");
}

TEST(AgentAnswer, UsesTheModulesPrecedenceForEachThresholdSeparately) {
  cc::AgentSettings settings;
  settings.sessions_trip = 10;
  auto payload = with_sessions(10);
  payload.global_override.has_load = 1;  // a global load override does not hide [agent] sessions
  payload.global_override.load_centi = 10000;
  EXPECT_EQ(cc::agent_answer(payload, settings), "drain\n");
}
