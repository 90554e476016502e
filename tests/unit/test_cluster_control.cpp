// Unit tests of common/cluster_control.cpp: the control state's JSON codec
// (Redis and the mirror file), node reports, key names and precedence.
#include "cluster_control.hpp"

#include <gtest/gtest.h>

#include <string>

#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

ClusterControl sample() {
  ClusterControl control;
  control.version = 42;
  control.state.cut_active = true;
  control.state.cut_reason = "DB maintenance é";
  control.state.cut_since = 1700000000;
  control.state.global.sessions = 500;
  control.state.vhosts["www.example.org"].load_centi = 850;
  control.changed_by_node = "web1";
  control.changed_by_user = "alice";
  control.changed_at_ms = 1700000000123;
  return control;
}

TEST(ClusterControl, KeysShareOneHashTag) {
  EXPECT_EQ(control_key("prod-web"), "coupecircuit:{prod-web}:control");
  EXPECT_EQ(changes_channel("prod-web"), "coupecircuit:{prod-web}:changes");
  EXPECT_EQ(node_key("prod-web", "web1"), "coupecircuit:{prod-web}:node:web1");
  EXPECT_EQ(nodes_index_key("prod-web"), "coupecircuit:{prod-web}:nodes");
}

TEST(ClusterControl, RoundTrip) {
  const ClusterControl control = sample();
  const std::string text = serialize_cluster_control(control);
  EXPECT_EQ(text.find('\n'), std::string::npos) << "one line: " << text;
  const auto parsed = parse_cluster_control(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(*parsed, control);
}

TEST(ClusterControl, RejectsWhatTheStateFileRejects) {
  const std::string good = serialize_cluster_control(sample());
  for (const auto& [from, to] : std::initializer_list<std::pair<std::string, std::string>>{
           {"\"format\":\"coupecircuit-control/1\"", "\"format\":\"coupecircuit-control/2\""},
           {"\"version\":42", "\"version\":-1"},
           {"\"version\":42", "\"version\":\"42\""},
           {"\"sessions\":500", "\"sessions\":0"},
           {"\"load\":\"8.50\"", "\"load\":8.5"},
           {"\"user\":\"alice\"", "\"user\":\"al ice\""},
           {"\"changed_at_ms\":1700000000123", "\"changed_at_ms\":-5"},
           {"\"active\":true", "\"active\":1"},
           {"\"cut\":{", "\"bogus\":1,\"cut\":{"}}) {
    std::string bad = good;
    const auto at = bad.find(from);
    ASSERT_NE(at, std::string::npos) << from << " in " << good;
    bad.replace(at, from.size(), to);
    EXPECT_FALSE(parse_cluster_control(bad).has_value()) << "accepted: " << bad;
  }
  EXPECT_FALSE(parse_cluster_control("[]").has_value());
  EXPECT_FALSE(parse_cluster_control("{").has_value());
  EXPECT_FALSE(parse_cluster_control(std::string(300 * 1024, ' ')).has_value());
}

TEST(ClusterControl, AMissingCutOrThresholdsIsEmpty) {
  const auto parsed = parse_cluster_control(R"({"format":"coupecircuit-control/1","version":3})");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->version, 3U);
  EXPECT_FALSE(parsed->state.cut_active);
  EXPECT_TRUE(parsed->state.vhosts.empty());
}

TEST(NodeReport, RoundTripAndUnknownKeysSkipped) {
  NodeReport report;
  report.node = "web2";
  report.helper_version = "1.2.3";
  report.pid = 77;
  report.state = "cut";
  report.load1_centi = 152;
  report.sessions_known = true;
  report.sessions_active = 1234;
  report.snapshot_sequence = 9;
  report.control_version = 42;
  report.cut = true;
  report.cut_local = true;
  report.local_unsynced = true;
  report.lease_holder = "web1";
  report.reported_at_ms = 1700000000999;
  std::string text = serialize_node_report(report);
  auto parsed = parse_node_report(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(*parsed, report);
  text.insert(1, "\"newer_field\":[1,2],");
  parsed = parse_node_report(text);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(*parsed, report);
  EXPECT_FALSE(parse_node_report(R"({"format":"coupecircuit-node/1","node":"x","pid":-1})").has_value());
  EXPECT_FALSE(parse_node_report(R"({"format":"coupecircuit-node/1"})").has_value());
}

TEST(EffectiveControl, LocalLayerOverCluster) {
  ClusterControl cluster;
  cluster.version = 5;
  cluster.state.global.sessions = 500;
  cluster.state.global.load_centi = 800;
  cluster.state.vhosts["a.example"].sessions = 50;
  ControlState local;
  local.global.load_centi = 400;
  local.vhosts["b.example"].sessions = 7;

  EffectiveControl effective = effective_control(local, &cluster);
  EXPECT_FALSE(effective.state.cut_active);
  EXPECT_FALSE(effective.cut_local);
  EXPECT_EQ(effective.state.global.sessions, 500U);
  EXPECT_EQ(effective.state.global.load_centi, 400U);  // local wins, field by field
  EXPECT_EQ(effective.state.vhosts.at("a.example").sessions, 50U);
  EXPECT_EQ(effective.state.vhosts.at("b.example").sessions, 7U);

  local.cut_active = true;
  local.cut_reason = "disk";
  effective = effective_control(local, &cluster);
  EXPECT_TRUE(effective.state.cut_active);
  EXPECT_TRUE(effective.cut_local);
  EXPECT_EQ(effective.state.cut_reason, "disk");

  cluster.state.cut_active = true;  // the cluster's cut: not local any more
  cluster.state.cut_reason = "release";
  effective = effective_control(local, &cluster);
  EXPECT_TRUE(effective.state.cut_active);
  EXPECT_FALSE(effective.cut_local);
  EXPECT_EQ(effective.state.cut_reason, "release");

  local.cut_active = false;  // a local "off" does not lift the cluster's cut
  effective = effective_control(local, &cluster);
  EXPECT_TRUE(effective.state.cut_active);

  effective = effective_control(local, nullptr);  // outside a cluster: the state file alone
  EXPECT_EQ(effective.state, local);
}

TEST(ClusterMirror, SavedAndLoadedBack) {
  test::TempDir dir;
  const std::string path = mirror_path_for(dir.path() + "/state");
  EXPECT_EQ(path, dir.path() + "/state.cluster");
  auto missing = load_cluster_mirror(path);
  ASSERT_TRUE(missing.has_value()) << missing.error().message;
  EXPECT_FALSE(missing->has_value());
  const ClusterMirror mirror{"prod-web", sample(), 1700000001};
  ASSERT_TRUE(save_cluster_mirror(path, mirror).has_value());
  auto loaded = load_cluster_mirror(path);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  ASSERT_TRUE(loaded->has_value());
  EXPECT_EQ(**loaded, mirror);
  test::write_file(path, "{\"format\":\"coupecircuit-cluster-mirror/1\",\"cluster\":\"x\",\"extra\":1}");
  auto invalid = load_cluster_mirror(path);
  ASSERT_FALSE(invalid.has_value());
  EXPECT_NE(invalid.error().message.find(path), std::string::npos);
}

}  // namespace
}  // namespace coupecircuit
