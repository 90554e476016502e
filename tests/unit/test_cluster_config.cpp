// Unit tests of [cluster] in coupecircuitd.conf (scanner/daemon_config.cpp):
// names, the Redis forms shared with [sessions] save_path, defaults, and
// errors that name the file and the line.
#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "daemon_config.hpp"
#include "daemon_config_test_support.hpp"
#include "redis_connection.hpp"

namespace coupecircuit {
namespace {

constexpr auto expect_error = test::expect_config_error;

TEST(ClusterConfig, AbsentMeansNotInACluster) {
  const auto parsed = parse_daemon_config_text("[sessions]\ndir = /tmp\n", "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_FALSE(parsed->cluster.enabled());
}

TEST(ClusterConfig, StandaloneServer) {
  const auto parsed = parse_daemon_config_text(
      "[cluster]\nname = prod-web\nnode = web1\nredis = tcp://10.0.0.5:6380?database=2\ntimeout_ms = 300\n", "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  const ClusterConfig& c = parsed->cluster;
  EXPECT_TRUE(c.enabled());
  EXPECT_EQ(c.name, "prod-web");
  EXPECT_EQ(c.node, "web1");
  EXPECT_EQ(c.redis.handler, SaveHandler::redis);
  ASSERT_EQ(c.redis.targets.size(), 1U);
  EXPECT_EQ(c.redis.targets[0].endpoints[0].host, "10.0.0.5");
  EXPECT_EQ(c.redis.targets[0].endpoints[0].port, 6380);
  EXPECT_EQ(c.redis.targets[0].database, 2U);
  EXPECT_EQ(c.timeout_ms, 300U);
  EXPECT_EQ(c.where, "test.conf:4");
}

TEST(ClusterConfig, RedisClusterSeedsAndDefaultNode) {
  const auto parsed = parse_daemon_config_text(
      "[cluster]\nname = a.b_c-1\nredis = seed[]=127.0.0.1:7000&seed[]=127.0.0.1:7001\nauth_file = /etc/x\n",
      "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  const ClusterConfig& c = parsed->cluster;
  EXPECT_EQ(c.redis.handler, SaveHandler::rediscluster);
  EXPECT_EQ(c.redis.targets.at(0).endpoints.size(), 2U);
  EXPECT_EQ(c.auth_file, "/etc/x");
  EXPECT_EQ(c.node, default_node_name());
  EXPECT_TRUE(validate_cluster_name("node", c.node).has_value());
  EXPECT_EQ(c.where, "test.conf:3");
}

TEST(ClusterConfig, BadNamesNameTheLine) {
  expect_error("[cluster]\nname = prod web\nredis = tcp://127.0.0.1:6379\n", 2, {"[cluster] name", "A-Za-z0-9_.-"});
  expect_error("[cluster]\nname = prod/web\nredis = tcp://127.0.0.1:6379\n", 2, {"[cluster] name"});
  expect_error("[cluster]\nname = {prod}\nredis = tcp://127.0.0.1:6379\n", 2, {"[cluster] name"});
  expect_error("[cluster]\nname = " + std::string(64, 'a') + "\nredis = tcp://127.0.0.1:6379\n", 2, {"1 to 63"});
  expect_error("[cluster]\nname = ok\nnode = web 1\nredis = tcp://127.0.0.1:6379\n", 3, {"[cluster] node"});
}

TEST(ClusterConfig, BadRedisNamesTheLineWithoutThePassword) {
  const std::string text = "[cluster]\nname = prod\nredis = tcp://127.0.0.1:6379?auth=s3cret&bogus=1\n";
  expect_error(text, 3, {"[cluster] redis", "bogus"});
  EXPECT_EQ(parse_daemon_config_text(text, "test.conf").error().message.find("s3cret"), std::string::npos);
  expect_error("[cluster]\nname = prod\nredis = tcp://a:1, tcp://b:2\n", 3, {"one Redis server"});
  expect_error("[cluster]\nname = prod\nredis = tls://a:1\n", 3, {"TLS"});
  expect_error("[cluster]\nname = prod\ntimeout_ms = 10\nredis = tcp://a:1\n", 3, {"timeout_ms"});
  expect_error("[cluster]\nname = prod\nflavour = x\n", 3, {"unknown setting"});
}

TEST(ClusterConfig, NameAndRedisGoTogether) {
  expect_error("[cluster]\nnode = web1\nredis = tcp://127.0.0.1:6379\n", 2, {"name is required"});
  expect_error("[cluster]\nname = prod\n", 2, {"redis is required"});
}

TEST(RedisConnection, KeySlotFollowsHashTags) {
  // Values from Redis's CLUSTER KEYSLOT.
  EXPECT_EQ(redis::key_slot("foo"), 12182U);
  EXPECT_EQ(redis::key_slot("{user1000}.following"), redis::key_slot("{user1000}.followers"));
  EXPECT_EQ(redis::key_slot("coupecircuit:{prod}:control"), redis::key_slot("prod"));
  EXPECT_EQ(redis::key_slot("a{}b"), redis::key_slot("a{}b"));  // empty tag: the whole key
  EXPECT_EQ(redis::key_slot("123456789"), 0x31C3U % 16384U);
}

TEST(RedisConnection, BackoffDoublesUpToTheMaximum) {
  redis::Backoff backoff(250, 2000);
  EXPECT_EQ(backoff.next(), 250U);
  EXPECT_EQ(backoff.next(), 500U);
  EXPECT_EQ(backoff.next(), 1000U);
  EXPECT_EQ(backoff.next(), 2000U);
  EXPECT_EQ(backoff.next(), 2000U);
  backoff.reset();
  EXPECT_EQ(backoff.next(), 250U);
}

}  // namespace
}  // namespace coupecircuit
