// Unit tests of common/probe_config.cpp and probes/prepare.cpp: the
// [probes] and [probe NAME] sections of coupecircuitd.conf, their defaults,
// and errors that name the file and line (never a secret); the rise/fall
// state of probes/runner.cpp.
#include "probe_config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>

#include "daemon_config.hpp"
#include "prepare.hpp"
#include "runner.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit::probes {
namespace {

using test::TempDir;

void expect_error(std::string_view text, int line, std::initializer_list<std::string_view> fragments) {
  auto parsed = parse_probes_config_text(text, "test.conf");
  std::string message;
  if (parsed) {
    auto prepared = prepare_probes(*parsed, "test.conf");
    ASSERT_FALSE(prepared.has_value()) << "accepted:\n" << text;
    message = prepared.error().message;
  } else {
    message = parsed.error().message;
  }
  const std::string prefix = "test.conf:" + std::to_string(line) + ": ";
  EXPECT_EQ(message.substr(0, prefix.size()), prefix) << message;
  for (const auto fragment : fragments) {
    EXPECT_NE(message.find(std::string(fragment)), std::string::npos)
        << "message \"" << message << "\" lacks \"" << fragment << "\"";
  }
}

TEST(ProbeConfig, DefaultsAndTheHelpersSectionsIgnored) {
  auto config = parse_probes_config_text(
      "[sessions]\ndir = /var/lib/php/sessions\n[agent]\nport = 0\n[log]\nlevel = debug\n"
      "[probe es]\ntype = tcp\naddress = 127.0.0.1:9200\n",
      "test.conf");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->results_path, kDefaultResultsPath);
  EXPECT_EQ(config->log_level, "debug");
  ASSERT_EQ(config->probes.size(), 1U);
  const ProbeSpec& probe = config->probes.front();
  EXPECT_EQ(probe.name, "es");
  EXPECT_EQ(probe.type, ProbeType::tcp);
  EXPECT_EQ(probe.period_ms, 5000U);
  EXPECT_EQ(probe.timeout_ms, 2000U);
  EXPECT_EQ(probe.rise, 2U);
  EXPECT_EQ(probe.fall, 3U);
  EXPECT_FALSE(probe.critical);
  EXPECT_EQ(probe.tcp.host, "127.0.0.1");
  EXPECT_EQ(probe.tcp.port, 9200);
  EXPECT_EQ(probe.line, 7);
  EXPECT_EQ(stale_after_ms(*config), 3 * 5000 + 2000);
}

TEST(ProbeConfig, EveryHttpKey) {
  auto config = parse_probes_config_text(
      "[probes]\nresults = /run/x/probes.json\n"
      "[probe elastic-1]\ntype = http\nperiod = 2.5\ntimeout = 500ms\nrise = 1\nfall = 5\ncritical = yes\n"
      "url = https://127.0.0.1:9200/_cat/health\nmethod = HEAD\nheader = Authorization: Bearer abc\n"
      "header = X-Probe: 1\nstatus = 200, 204 300-399\nbody = green|yellow\ninsecure = yes\nca_file = /etc/ca.pem\n",
      "test.conf");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->results_path, "/run/x/probes.json");
  const ProbeSpec& probe = config->probes.at(0);
  EXPECT_EQ(probe.period_ms, 2500U);
  EXPECT_EQ(probe.timeout_ms, 500U);
  EXPECT_EQ(probe.rise, 1U);
  EXPECT_EQ(probe.fall, 5U);
  EXPECT_TRUE(probe.critical);
  EXPECT_EQ(probe.http.method, "HEAD");
  EXPECT_EQ(probe.http.headers, (std::vector<std::string>{"Authorization: Bearer abc", "X-Probe: 1"}));
  EXPECT_TRUE(status_accepted(probe.http.statuses, 204));
  EXPECT_TRUE(status_accepted(probe.http.statuses, 302));
  EXPECT_FALSE(status_accepted(probe.http.statuses, 201));
  EXPECT_EQ(probe.http.body_regex, "green|yellow");
  EXPECT_TRUE(probe.http.insecure);
  EXPECT_EQ(probe.http.ca_file, "/etc/ca.pem");
  EXPECT_EQ(stale_after_ms(*config), 3 * 2500 + 500);
  EXPECT_TRUE(prepare_probes(*config, "test.conf"));
}

TEST(ProbeConfig, RedisForms) {
  auto config = parse_probes_config_text(
      "[probe a]\ntype = redis\naddress = 127.0.0.1:6380\n"
      "[probe b]\ntype = redis\naddress = tcp://10.0.0.1:6379?auth=secret&database=2\n"
      "[probe c]\ntype = redis\naddress = unix:///run/redis/redis.sock\n",
      "test.conf");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->probes.at(0).redis.target.endpoints.at(0).port, 6380);
  EXPECT_EQ(config->probes.at(1).redis.target.password, "secret");
  EXPECT_EQ(config->probes.at(2).redis.target.endpoints.at(0).socket_path, "/run/redis/redis.sock");
}

TEST(ProbeConfig, ErrorsNameTheFileAndLine) {
  expect_error("[probe x]\ntype = foo\n", 2, {"type = foo", "unknown type"});
  expect_error("\n[probe x]\nperiod = 5\n", 2, {"type is missing"});
  expect_error("[probe x]\ntype = http\n", 1, {"url is missing"});
  expect_error("[probe x]\ntype = http\nurl = ftp://a/\n", 3, {"http:// or https://"});
  expect_error("[probe x]\ntype = http\nurl = http://a/\nbody = (unclosed\n", 4, {"body", "PCRE2"});
  expect_error("[probe x]\ntype = http\nurl = http://a/\nstatus = 99\n", 4, {"status"});
  expect_error("[probe x]\ntype = tcp\naddress = nowhere\n", 3, {"host:port"});
  expect_error("[probe x]\ntype = tcp\naddress = a:70000\n", 3, {"port"});
  // One bad setting after a valid tcp probe's: named on line 4.
  for (const auto& [setting, fragment] : {std::pair{"url = http://a/", "unknown setting for a tcp probe"},
                                          std::pair{"period = 0", "period"}, std::pair{"timeout = 61", "out of range"},
                                          std::pair{"rise = 0", "rise"}, std::pair{"critical = maybe", "critical"}}) {
    expect_error("[probe x]\ntype = tcp\naddress = a:1\n" + std::string(setting) + "\n", 4, {fragment});
  }
  expect_error("[probe x]\ntype = tcp\naddress = a:1\ntimeout = 61\n", 4, {"timeout"});  // and names the setting
  expect_error("[probe bad.name]\ntype = tcp\naddress = a:1\n", 1, {"[probe bad.name]"});
  expect_error("[probe abcdefghijabcdefghijabcdefghijab]\ntype = tcp\naddress = a:1\n", 1, {"probe"});
  expect_error("[probe x]\ntype = tcp\naddress = a:1\n[probe x]\ntype = tcp\naddress = a:2\n", 4,
               {"already defined at line 1"});
  expect_error("[probes]\nresults = relative.json\n", 2, {"absolute path"});
  expect_error("[probes]\nfoo = 1\n", 2, {"unknown setting"});
  expect_error("[probe x]\ntype = postgresql\n", 1, {"conninfo_file is missing"});
  expect_error("[probe x]\ntype = postgresql\nconninfo_file = /nonexistent/pg\n", 3, {"conninfo_file /nonexistent/pg"});
}

TEST(ProbeConfig, MoreThanSixteenProbesIsAnErrorAtTheSeventeenth) {
  std::string text;
  for (int i = 0; i < 17; ++i) text += "[probe p" + std::to_string(i) + "]\ntype = tcp\naddress = a:1\n";
  expect_error(text, 16 * 3 + 1, {"too many probes", "16"});
}

TEST(ProbeConfig, SecretsNeverInErrors) {
  expect_error("[probe x]\ntype = http\nurl = http://a/\nheader = Authorization Bearer s3cr3t\n", 4, {"Name: value"});
  auto parsed = parse_probes_config_text("[probe x]\ntype = http\nurl = http://a/\nheader = Authorization Bearer s3cr3t\n", "t");
  ASSERT_FALSE(parsed);
  EXPECT_EQ(parsed.error().message.find("s3cr3t"), std::string::npos) << parsed.error().message;
  auto redis = parse_probes_config_text("[probe x]\ntype = redis\naddress = tcp://a:1?auth=s3cr3t&bogus=1\n", "t");
  ASSERT_FALSE(redis);
  EXPECT_EQ(redis.error().message.find("s3cr3t"), std::string::npos) << redis.error().message;
}

TEST(ProbeConfig, ConninfoFileMustBeRootOnlyAndValid) {
  TempDir dir;
  const std::string path = dir.path() + "/pg.conninfo";
  test::write_file(path, "host=127.0.0.1 port=5432 password=hunter2 dbname=app\n");
  const std::string text = "[probe pg]\ntype = postgresql\nconninfo_file = " + path + "\n";
  ::chmod(path.c_str(), 0640);
  expect_error(text, 3, {"group or others"});
  ::chmod(path.c_str(), 0600);
  auto config = parse_probes_config_text(text, "test.conf");
  ASSERT_TRUE(config);
  ASSERT_TRUE(prepare_probes(*config, "test.conf"));
  EXPECT_EQ(config->probes.at(0).secret, "host=127.0.0.1 port=5432 password=hunter2 dbname=app");
  test::write_file(path, "host=127.0.0.1 'hunter2\n");
  ::chmod(path.c_str(), 0600);
  auto invalid = parse_probes_config_text(text, "test.conf");
  ASSERT_TRUE(invalid);
  auto prepared = prepare_probes(*invalid, "test.conf");
  ASSERT_FALSE(prepared);
  EXPECT_NE(prepared.error().message.find("not a valid libpq connection string"), std::string::npos);
  EXPECT_EQ(prepared.error().message.find("hunter2"), std::string::npos) << prepared.error().message;
}

TEST(ProbeConfig, TheHelperAcceptsTheProbeSections) {
  auto config = parse_daemon_config_text(
      "[probes]\nresults = /run/coupecircuit/probes/probes.json\n[probe es]\ntype = http\nurl = http://a/\n"
      "[sessions]\ndir = /tmp\n",
      "test.conf");
  ASSERT_TRUE(config) << config.error().message;
  EXPECT_EQ(config->scan.session_dir, "/tmp");
}

TEST(ProbeConfig, Durations) {
  EXPECT_EQ(*parse_duration_ms("5", 100, 60000), 5000U);
  EXPECT_EQ(*parse_duration_ms("5s", 100, 60000), 5000U);
  EXPECT_EQ(*parse_duration_ms("0.25", 100, 60000), 250U);
  EXPECT_EQ(*parse_duration_ms("150ms", 100, 60000), 150U);
  EXPECT_FALSE(parse_duration_ms("50ms", 100, 60000));
  EXPECT_FALSE(parse_duration_ms("-1", 100, 60000));
  EXPECT_FALSE(parse_duration_ms("5m", 100, 60000));
  EXPECT_FALSE(parse_duration_ms("", 100, 60000));
}

// HAProxy's rise/fall: unknown at first, up after `rise` successes in a row,
// down after `fall` failures in a row; one failure among successes changes nothing.
TEST(ProbeState, RiseAndFall) {
  ProbeState state;
  CheckOutcome ok{true, 10, std::nullopt, ""};
  CheckOutcome ko{false, 10, std::nullopt, "status 503"};
  EXPECT_FALSE(state.record(ok, 2, 3, 100));
  EXPECT_EQ(state.status, ProbeStatus::unknown);
  EXPECT_TRUE(state.record(ok, 2, 3, 101));
  EXPECT_EQ(state.status, ProbeStatus::up);
  EXPECT_EQ(state.since_wall_s, 101);
  EXPECT_TRUE(state.record(ko, 2, 3, 102));  // the error changed: written, still up
  EXPECT_EQ(state.status, ProbeStatus::up);
  EXPECT_FALSE(state.record(ko, 2, 3, 103));
  EXPECT_EQ(state.status, ProbeStatus::up);
  EXPECT_TRUE(state.record(ko, 2, 3, 104));
  EXPECT_EQ(state.status, ProbeStatus::down);
  EXPECT_EQ(state.since_wall_s, 104);
  EXPECT_TRUE(state.record(ok, 2, 3, 105));
  EXPECT_EQ(state.status, ProbeStatus::down);
  EXPECT_TRUE(state.record(ok, 2, 3, 106));
  EXPECT_EQ(state.status, ProbeStatus::up);

  ProbeState failing;
  failing.record(ko, 2, 3, 1);
  failing.record(ko, 2, 3, 2);
  EXPECT_EQ(failing.status, ProbeStatus::unknown);
  failing.record(ko, 2, 3, 3);
  EXPECT_EQ(failing.status, ProbeStatus::down);
}

std::string shipped_unit_text() {
  std::ifstream in((std::filesystem::path(__FILE__).parent_path() / "../../conf.d/coupecircuit-probes.service").lexically_normal());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> unit_values(const std::string& unit, const std::string& key) {
  std::vector<std::string> values;
  std::istringstream lines(unit);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(key + "=", 0) == 0) values.push_back(line.substr(key.size() + 1));
  }
  return values;
}

TEST(ShippedProbesUnit, UnprivilegedWithNetworkAndItsOwnRuntimeDirectory) {
  const std::string unit = shipped_unit_text();
  ASSERT_FALSE(unit.empty());
  EXPECT_EQ(unit_values(unit, "User"), std::vector<std::string>{"coupecircuit"});
  EXPECT_EQ(unit_values(unit, "DynamicUser"), std::vector<std::string>{"yes"});
  EXPECT_EQ(unit_values(unit, "CapabilityBoundingSet"), std::vector<std::string>{""});
  EXPECT_EQ(unit_values(unit, "NoNewPrivileges"), std::vector<std::string>{"yes"});
  EXPECT_EQ(unit_values(unit, "ProtectSystem"), std::vector<std::string>{"strict"});
  EXPECT_EQ(unit_values(unit, "RestrictAddressFamilies"), std::vector<std::string>{"AF_UNIX AF_INET AF_INET6"});
  // The results file's directory is the default of [probes] results.
  EXPECT_EQ(unit_values(unit, "RuntimeDirectory"), std::vector<std::string>{"coupecircuit/probes"});
  EXPECT_EQ(unit_values(unit, "RuntimeDirectoryMode"), std::vector<std::string>{"0755"});
  EXPECT_EQ(std::string(kDefaultResultsPath), "/run/coupecircuit/probes/probes.json");
}

// systemd-analyze security of the shipped unit (ExecStart pointed at an
// existing binary, the check looks at the settings only): at most 2.0.
TEST(ShippedProbesUnit, SecurityExposureAtMostTwo) {
  if (::access("/usr/bin/systemd-analyze", X_OK) != 0) GTEST_SKIP() << "systemd-analyze is not installed";
  TempDir dir;
  const std::string path = dir / "coupecircuit-probes.service";
  test::write_file(path, std::regex_replace(shipped_unit_text(), std::regex("/usr/sbin/coupecircuit-probes"), "/bin/true"));
  const std::string command = "/usr/bin/systemd-analyze security --offline=yes --no-pager " + path + " 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  ::pclose(pipe);
  std::smatch found;
  ASSERT_TRUE(std::regex_search(output, found, std::regex("Overall exposure level for [^:]*: ([0-9.]+)"))) << output;
  EXPECT_LE(std::stod(found[1].str()), 2.0) << output;
}

}  // namespace
}  // namespace coupecircuit::probes
