// Unit tests of common/save_path.cpp: session.save_path strings as PHP and
// phpredis read them, and errors that name the offending part without ever
// repeating a password. Also the [sessions] store settings of coupecircuitd.conf.
#include "save_path.hpp"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "daemon_config.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

SavePath parsed(SaveHandler handler, std::string_view text) {
  auto result = parse_save_path(handler, text);
  EXPECT_TRUE(result.has_value()) << text << ": " << (result ? "" : result.error().message);
  return result ? *result : SavePath{};
}

void expect_rejected(SaveHandler handler, std::string_view text, std::string_view names) {
  auto result = parse_save_path(handler, text);
  ASSERT_FALSE(result.has_value()) << "accepted: " << text;
  EXPECT_NE(result.error().message.find(names), std::string::npos)
      << "error \"" << result.error().message << "\" does not name \"" << names << "\"";
  EXPECT_EQ(result.error().message.find("s3cret"), std::string::npos) << result.error().message;
}

struct RejectedCase {
  std::string_view text;
  std::string_view names;
};

void expect_all_rejected(SaveHandler handler, std::initializer_list<RejectedCase> cases) {
  for (const auto& [text, names] : cases) expect_rejected(handler, text, names);
}

// What one parsed target must hold: how many endpoints, and one of them.
struct ExpectedTarget {
  std::size_t endpoints;
  std::size_t index;
  std::string_view host;
  int port;
  std::string_view password;
  std::string_view prefix;
};

void expect_target(const RedisTarget& target, const ExpectedTarget& expected) {
  ASSERT_EQ(target.endpoints.size(), expected.endpoints);
  EXPECT_EQ(target.endpoints[expected.index].host, expected.host);
  EXPECT_EQ(target.endpoints[expected.index].port, expected.port);
  EXPECT_EQ(target.password, expected.password);
  EXPECT_EQ(target.prefix, expected.prefix);
}

TEST(SavePath, Handlers) {
  EXPECT_EQ(*parse_save_handler("files"), SaveHandler::files);
  EXPECT_EQ(*parse_save_handler("redis"), SaveHandler::redis);
  EXPECT_EQ(*parse_save_handler("rediscluster"), SaveHandler::rediscluster);
  auto bad = parse_save_handler("memcached");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("\"memcached\""), std::string::npos);
}

TEST(SavePath, FilesLayouts) {
  EXPECT_EQ(parsed(SaveHandler::files, "/var/lib/php/sessions").directory, "/var/lib/php/sessions");
  const auto two = parsed(SaveHandler::files, "2;/var/lib/php/sessions/");
  EXPECT_EQ(two.directory, "/var/lib/php/sessions");
  EXPECT_EQ(two.depth, 2U);
  const auto mode = parsed(SaveHandler::files, "\"1;0600;/srv/sessions\"");
  EXPECT_EQ(mode.directory, "/srv/sessions");
  EXPECT_EQ(mode.depth, 1U);
  expect_all_rejected(SaveHandler::files, {{"x;/tmp", "depth \"x\""},
                                           {"1;0999;/tmp", "mode \"0999\""},
                                           {"1;0600;sessions", "directory \"sessions\""},
                                           {"1;2;3;/tmp", "too many ';'"},
                                           {"  ", "empty"}});
}

TEST(SavePath, RedisUrls) {
  const auto one = parsed(SaveHandler::redis, "tcp://10.0.0.5:6380?auth=s3cret&database=2&prefix=sf_s&timeout=2.5");
  ASSERT_EQ(one.targets.size(), 1U);
  expect_target(one.targets[0],
                {.endpoints = 1, .index = 0, .host = "10.0.0.5", .port = 6380, .password = "s3cret", .prefix = "sf_s"});
  EXPECT_EQ(one.targets[0].database, 2U);
  EXPECT_TRUE(save_path_has_password(one));

  const auto defaults = parsed(SaveHandler::redis, "tcp://redis.example");
  EXPECT_EQ(defaults.targets[0].endpoints[0].port, 6379);
  EXPECT_EQ(defaults.targets[0].prefix, kRedisDefaultPrefix);
  EXPECT_EQ(defaults.targets[0].database, 0U);
  EXPECT_FALSE(save_path_has_password(defaults));

  // phpredis shards over several URLs, separated by commas or spaces.
  const auto pool =
      parsed(SaveHandler::redis, "tcp://a:1?weight=2, tcp://b:2 unix:///run/redis/redis.sock?prefix=p%3A");
  ASSERT_EQ(pool.targets.size(), 3U);
  EXPECT_EQ(pool.targets[1].endpoints[0].host, "b");
  EXPECT_EQ(pool.targets[2].endpoints[0].socket_path, "/run/redis/redis.sock");
  EXPECT_EQ(pool.targets[2].prefix, "p:");
  EXPECT_EQ(parsed(SaveHandler::redis, "/run/redis.sock").targets[0].endpoints[0].socket_path, "/run/redis.sock");
  EXPECT_EQ(parsed(SaveHandler::redis, "tcp://[::1]:7000").targets[0].endpoints[0].host, "::1");

  // ACL: auth[]=user&auth[]=password; URL-decoding as PHP does.
  const auto acl = parsed(SaveHandler::redis, "tcp://h:1?auth[]=app&auth[]=pa+ss%21");
  EXPECT_EQ(acl.targets[0].user, "app");
  EXPECT_EQ(acl.targets[0].password, "pa ss!");
}

TEST(SavePath, RedisErrorsNameThePart) {
  expect_all_rejected(SaveHandler::redis, {{"tcp://h:99999", "port \"99999\""},
                                           {"tcp://h:1?database=two&auth=s3cret", "database=\"two\""},
                                           {"tcp://h:1?auth=s3cret&prefx=a", "unknown parameter \"prefx\""},
                                           {"tls://h:1?auth=s3cret", "TLS is not supported"},
                                           {"http://h:1", "unknown scheme \"http\""},
                                           {"tcp://:1", "missing host"},
                                           {"tcp://user:s3cret@h:1", "use ?auth="},
                                           {"tcp://h:1?timeout=-1", "timeout=\"-1\""},
                                           {"unix:relative.sock", "not absolute"},
                                           {" , ", "no server"},
                                           {"tcp://h:1?auth=s3cret&auth=s3cret", "auth given twice"}});
}

TEST(SavePath, ClusterSeeds) {
  const auto cluster =
      parsed(SaveHandler::rediscluster,
             "seed[]=10.0.0.1:7000&seed[]=10.0.0.2:7001&prefix=app_&auth=s3cret&timeout=2&failover=error");
  ASSERT_EQ(cluster.targets.size(), 1U);
  expect_target(cluster.targets[0],
                {.endpoints = 2, .index = 1, .host = "10.0.0.2", .port = 7001, .password = "s3cret", .prefix = "app_"});
  EXPECT_EQ(parsed(SaveHandler::rediscluster, "seed%5B%5D=h:1").targets[0].prefix, kRedisClusterDefaultPrefix);

  expect_all_rejected(SaveHandler::rediscluster, {{"prefix=a&auth=s3cret", "no seed[]"},
                                                  {"seed[]=h", "missing port"},
                                                  {"seed[]=h:0&auth=s3cret", "port \"0\""},
                                                  {"seed[]=h:1&database=1", "database"},
                                                  {"seed[]=h:1&failover=maybe", "failover=\"maybe\""},
                                                  {"seed[]=h:1&sed[]=h:2", "unknown parameter \"sed[]\""}});
}

TEST(SavePathConfig, FileErrorsNameLineAndNeverThePassword) {
  const auto bad = parse_daemon_config_text(
      "[sessions]\nsave_handler = redis\n\nsave_path = tcp://h:1?auth=s3cret&database=x\n", "test.conf");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.rfind("test.conf:4: [sessions] save_path (for redis): ", 0), 0U) << bad.error().message;
  EXPECT_EQ(bad.error().message.find("s3cret"), std::string::npos);
  const auto handler = parse_daemon_config_text("[sessions]\nsave_handler = redisx\n", "test.conf");
  ASSERT_FALSE(handler);
  EXPECT_EQ(handler.error().message.rfind("test.conf:2: ", 0), 0U) << handler.error().message;
}

TEST(SavePathConfig, ResolvesTheStoreAndItsDefaults) {
  auto config = parse_daemon_config_text(
      "[sessions]\nsave_handler = rediscluster\nsave_path = seed[]=127.0.0.1:7000\ngc_maxlifetime = 3600\n",
      "test.conf");
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_TRUE(resolve_session_store(*config, "test.conf"));
  EXPECT_EQ(config->store.handler, SaveHandler::rediscluster);
  EXPECT_EQ(config->rescan_interval_s, kRedisRescanIntervalS);
  EXPECT_EQ(config->gc_maxlifetime_s, 3600U);

  auto files = parse_daemon_config_text("[sessions]\nsave_path = 2;/srv/sess\nrescan_interval = 30\n", "test.conf");
  ASSERT_TRUE(files);
  ASSERT_TRUE(resolve_session_store(*files, "test.conf"));
  EXPECT_EQ(files->scan.session_dir, "/srv/sess");
  EXPECT_EQ(files->rescan_interval_s, 30U);

  auto missing = parse_daemon_config_text("[sessions]\nsave_handler = redis\n", "test.conf");
  ASSERT_TRUE(missing);
  auto resolved = resolve_session_store(*missing, "test.conf");
  ASSERT_FALSE(resolved);
  EXPECT_NE(resolved.error().message.find("needs a save_path"), std::string::npos);
}

TEST(SavePathConfig, PasswordFileMustBePrivate) {
  test::TempDir dir;
  const std::string path = dir.path() + "/redis.pass";
  {
    std::ofstream out(path);
    out << "s3cret\nignored\n";
  }
  ::chmod(path.c_str(), 0644);
  auto open = read_password_file(path);
  ASSERT_FALSE(open);
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos);
  EXPECT_EQ(open.error().message.find("s3cret"), std::string::npos);
  ::chmod(path.c_str(), 0600);
  auto ok = read_password_file(path);
  ASSERT_TRUE(ok) << ok.error().message;
  EXPECT_EQ(*ok, "s3cret");
  EXPECT_FALSE(read_password_file(dir.path() + "/absent"));
}

}  // namespace
}  // namespace coupecircuit
