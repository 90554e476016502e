// Unit tests of scanner/probe_reader.cpp: the helper's reading of the probe
// results file into the snapshot's probe table, and of [probes] in
// coupecircuitd.conf.
#include "probe_reader.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "daemon_config.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

using probes::ProbeResult;
using probes::ProbeResults;
using probes::ProbeStatus;
using probes::ProbeType;

constexpr std::int64_t kNowMs = 1'700'000'010'000;

ProbeResults four_probes() {
  ProbeResults results;
  results.written_wall_ms = kNowMs - 2'000;
  results.pid = 99;
  results.stale_after_ms = 15'000;
  ProbeResult pg{"pg", ProbeType::postgresql, true, ProbeStatus::up, 1'700'000'000, 1200, 57, ""};
  ProbeResult replica{"pg-replica", ProbeType::postgresql, false, ProbeStatus::down, 1'700'000'005, 0,
                      40,           "connection refused"};
  ProbeResult elastic{"elastic", ProbeType::http, true, ProbeStatus::down, 1'700'000'001, 2'000'000, {}, "timeout"};
  ProbeResult redis{"redis", ProbeType::redis, false, ProbeStatus::unknown, 0, 0, {}, ""};
  results.probes = {pg, replica, elastic, redis};
  return results;
}

TEST(ProbeTable, NotConfiguredStaysZero) {
  snapshot::Payload payload{};
  payload.probe_flags = 77;
  const auto results = four_probes();
  fill_probe_table(false, &results, kNowMs, payload);
  EXPECT_EQ(payload.probe_flags, 0U);
  EXPECT_EQ(payload.probe_count, 0U);
  EXPECT_STREQ(payload.probes[0].name, "");
}

TEST(ProbeTable, FreshResults) {
  snapshot::Payload payload{};
  const auto results = four_probes();
  fill_probe_table(true, &results, kNowMs, payload);
  EXPECT_EQ(payload.probe_flags, snapshot::kProbesConfigured | snapshot::kProbesCriticalDown);
  ASSERT_EQ(payload.probe_count, 4U);
  EXPECT_EQ(payload.probes_updated_wall_s, (kNowMs - 2'000) / 1000);
  EXPECT_STREQ(payload.probes_down_text, "pg-replica,elastic");
  EXPECT_STREQ(payload.probes[0].name, "pg");
  EXPECT_EQ(payload.probes[0].status, snapshot::kProbeUp);
  EXPECT_EQ(payload.probes[0].flags, snapshot::kProbeCritical | snapshot::kProbeHasSaturation);
  EXPECT_STREQ(payload.probes[0].saturation_text, "57");
  EXPECT_EQ(payload.probes[0].latency_us, 1200U);
  // Down: its last saturation is no measurement.
  EXPECT_EQ(payload.probes[1].status, snapshot::kProbeDown);
  EXPECT_EQ(payload.probes[1].flags, 0U);
  EXPECT_STREQ(payload.probes[1].saturation_text, "");
  EXPECT_STREQ(payload.probes[1].last_error, "connection refused");
  EXPECT_EQ(payload.probes[3].status, snapshot::kProbeUnknown);
}

TEST(ProbeTable, NonCriticalDownDoesNotFlagCriticalDown) {
  snapshot::Payload payload{};
  auto results = four_probes();
  results.probes[2].status = ProbeStatus::up;
  fill_probe_table(true, &results, kNowMs, payload);
  EXPECT_EQ(payload.probe_flags & snapshot::kProbesCriticalDown, 0U);
  EXPECT_STREQ(payload.probes_down_text, "pg-replica");
}

TEST(ProbeTable, StaleResultsAreUnknownNeverUp) {
  snapshot::Payload payload{};
  const auto results = four_probes();
  fill_probe_table(true, &results, kNowMs + 15'000, payload);
  EXPECT_EQ(payload.probe_flags, snapshot::kProbesConfigured | snapshot::kProbesStale);
  ASSERT_EQ(payload.probe_count, 4U);
  for (std::size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(payload.probes[i].status, snapshot::kProbeUnknown) << i;
    EXPECT_EQ(payload.probes[i].flags & snapshot::kProbeHasSaturation, 0U) << i;
  }
  EXPECT_STREQ(payload.probes_down_text, "");
  EXPECT_STREQ(payload.probes[1].name, "pg-replica");  // names stay for the status
}

TEST(ProbeTable, NoResultsAtAllIsStale) {
  snapshot::Payload payload{};
  fill_probe_table(true, nullptr, kNowMs, payload);
  EXPECT_EQ(payload.probe_flags, snapshot::kProbesConfigured | snapshot::kProbesStale);
  EXPECT_EQ(payload.probe_count, 0U);
}

TEST(ProbeTable, SixteenDownNamesFit) {
  ProbeResults results;
  results.written_wall_ms = kNowMs;
  for (int i = 0; i < 16; ++i) {
    std::string name = std::string(29, 'n') + (i < 10 ? "0" : "") + std::to_string(i);
    results.probes.push_back({name, ProbeType::tcp, false, ProbeStatus::down, 0, 0, {}, ""});
  }
  snapshot::Payload payload{};
  fill_probe_table(true, &results, kNowMs, payload);
  EXPECT_EQ(std::strlen(payload.probes_down_text), 16U * 31U + 15U);
}

TEST(ProbeResultsReader, KeepsTheLastValidResultsAndIgnoresBadInput) {
  test::TempDir dir;
  const auto path = dir / "probes.json";
  ProbeResultsReader reader;
  reader.configure(true, path);
  reader.refresh(kNowMs);  // missing
  snapshot::Payload payload{};
  reader.fill(payload, kNowMs);
  EXPECT_NE(payload.probe_flags & snapshot::kProbesStale, 0U);

  test::write_file(path, probes::render_probe_results(four_probes()));
  reader.refresh(kNowMs);
  snapshot::Payload good{};
  reader.fill(good, kNowMs);
  EXPECT_EQ(good.probe_flags & snapshot::kProbesStale, 0U);
  ASSERT_EQ(good.probe_count, 4U);

  for (const std::string& bad :
       {std::string("garbage"), std::string(probes::kMaxResultsBytes + 10, ' '),
        probes::render_probe_results(four_probes())
            .replace(probes::render_probe_results(four_probes()).find("\"pg\""), 4, "\"p\\u0007g\"")}) {
    ASSERT_EQ(::unlink(path.c_str()), 0);
    test::write_file(path, bad);
    reader.refresh(kNowMs + 1000);
    snapshot::Payload after{};
    reader.fill(after, kNowMs);
    EXPECT_EQ(std::memcmp(&after, &good, sizeof good), 0) << bad.substr(0, 40);
  }
  // The kept results age like any other.
  snapshot::Payload later{};
  reader.fill(later, kNowMs + 20'000);
  EXPECT_NE(later.probe_flags & snapshot::kProbesStale, 0U);
}

TEST(DaemonConfigProbes, ResultsPathAndProbeSections) {
  auto none = parse_daemon_config_text("[log]\nlevel = info\n", "test.conf");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(none->probes_configured);
  EXPECT_EQ(none->probes_results_path, probes::kDefaultResultsPath);

  auto some = parse_daemon_config_text(
      "[probes]\nresults = /run/x/probes.json\n[probe pg]\ntype = postgresql\nwhatever = 1\n", "test.conf");
  ASSERT_TRUE(some) << some.error().message;
  EXPECT_TRUE(some->probes_configured);
  EXPECT_EQ(some->probes_results_path, "/run/x/probes.json");

  auto only_probe = parse_daemon_config_text("[probe es]\ntype = http\n", "test.conf");
  ASSERT_TRUE(only_probe) << only_probe.error().message;
  EXPECT_TRUE(only_probe->probes_configured);

  auto relative = parse_daemon_config_text("[sessions]\n\n[probes]\nresults = probes.json\n", "test.conf");
  ASSERT_FALSE(relative);
  EXPECT_NE(relative.error().message.find("test.conf:4"), std::string::npos) << relative.error().message;
}

}  // namespace
}  // namespace coupecircuit
