// Unit tests of scanner/daemon_config.cpp: every key of coupecircuitd.conf,
// defaults, comments, and errors that name the file, the line and the key.
#include "daemon_config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "daemon_config_test_support.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

using test::TempDir;

// The rules as one comma list, as they would be written.
std::string rules_text(const ClassifierRule& rule) {
  std::string out;
  for (const auto& r : rule.authenticated) out += (out.empty() ? "" : ", ") + to_string(r);
  return out;
}

constexpr auto expect_error = test::expect_config_error;

// A bad value of one [sessions] setting, and what the message must say
// besides the setting's name.
struct BadValue {
  std::string_view value;
  std::string_view fragment{};  // empty: the name alone
};

// Each "[sessions]\n<key> = <value>" is rejected on line 2, naming the key.
void expect_bad_sessions_values(std::string_view key, std::initializer_list<BadValue> values) {
  for (const auto& [value, fragment] : values) {
    const std::string text =
        "[sessions]\n" + std::string(key) + (value.empty() ? " =" : " = ") + std::string(value) + "\n";
    if (fragment.empty()) {
      expect_error(text, 2, {key});
    } else {
      expect_error(text, 2, {key, fragment});
    }
  }
}

TEST(DaemonConfig, Defaults) {
  const DaemonConfig config;
  EXPECT_EQ(config.scan.session_dir, "/var/lib/php/sessions");
  EXPECT_EQ(config.scan.max_depth, 3U);
  EXPECT_EQ(config.scan.max_read_bytes, 1024U * 1024U);
  EXPECT_EQ(config.scan.read_chunk_bytes, 64U * 1024U);
  EXPECT_EQ(config.scan.active_minutes, 24U);
  EXPECT_EQ(config.scan.scan_threads, 4U);
  EXPECT_FALSE(config.scan.classify_inactive);
  EXPECT_EQ(config.scan.rule.authenticated, std::vector<AuthenticatedRule>{AuthenticatedRule{}});
  EXPECT_EQ(config.scan.rule.unknown_key, "__ZF");
  EXPECT_EQ(config.scan.rule.format, SessionFormat::automatic);
  EXPECT_EQ(config.rescan_interval_s, 60U);
  EXPECT_EQ(config.snapshot_path, "/run/coupecircuit/snapshot");
  EXPECT_EQ(config.state_path, "/var/lib/coupecircuit/state");
  EXPECT_EQ(config.log_level, "info");
  EXPECT_EQ(config.agent.port, 0U);
  EXPECT_EQ(config.agent.bind, "127.0.0.1");
  EXPECT_FALSE(config.agent.sessions_trip.has_value());
  EXPECT_FALSE(config.agent.load_trip_centi.has_value());
}

TEST(DaemonConfig, TheShippedConfigurationLoadsAndMatchesTheDefaults) {
  // tests/data need not exist: go up lexically to the source tree.
  const std::string path =
      (std::filesystem::path(COUPECIRCUIT_TEST_DATA_DIR).parent_path().parent_path() / "conf.d/coupecircuitd.conf")
          .string();
  const auto loaded = load_daemon_config(path, true);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  const DaemonConfig defaults;
  EXPECT_EQ(loaded->scan.session_dir, defaults.scan.session_dir);
  EXPECT_EQ(loaded->scan.active_minutes, defaults.scan.active_minutes);
  EXPECT_EQ(loaded->scan.max_depth, defaults.scan.max_depth);
  EXPECT_EQ(loaded->scan.max_read_bytes, defaults.scan.max_read_bytes);
  EXPECT_EQ(loaded->scan.scan_threads, defaults.scan.scan_threads);
  EXPECT_EQ(loaded->scan.classify_inactive, defaults.scan.classify_inactive);
  EXPECT_EQ(loaded->scan.rule.authenticated, defaults.scan.rule.authenticated);
  EXPECT_EQ(loaded->scan.rule.unknown_key, defaults.scan.rule.unknown_key);
  EXPECT_EQ(loaded->scan.rule.format, defaults.scan.rule.format);
  EXPECT_EQ(loaded->rescan_interval_s, defaults.rescan_interval_s);
  EXPECT_EQ(loaded->snapshot_path, defaults.snapshot_path);
  EXPECT_EQ(loaded->state_path, defaults.state_path);
  EXPECT_EQ(loaded->log_level, defaults.log_level);
  EXPECT_EQ(loaded->agent.port, defaults.agent.port);
  EXPECT_EQ(loaded->agent.bind, defaults.agent.bind);
}

TEST(DaemonConfig, EmptyTextKeepsTheDefaults) {
  for (const std::string_view text : {"", "\n\n", "# only a comment\n", "; another\n", "[sessions]\n"}) {
    const auto parsed = parse_daemon_config_text(text, "test.conf");
    ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
    EXPECT_EQ(parsed->scan.session_dir, "/var/lib/php/sessions");
    EXPECT_EQ(parsed->scan.max_depth, 3U);
    EXPECT_EQ(parsed->rescan_interval_s, 60U);
    EXPECT_EQ(parsed->log_level, "info");
  }
}

TEST(DaemonConfig, EveryKey) {
  constexpr std::string_view kText = R"(# coupecircuitd configuration
; both comment styles

[sessions]
dir = /srv/php/sessions
active_minutes = 30
rescan_interval = 120
max_read_bytes = 131072
max_depth = 2
format = php_serialize
authenticated = _sf2_attributes contains _security_main
unknown_key = _sf2_meta

[snapshot]
path = /run/cc/snapshot

[state]
path = /var/lib/cc/state

[log]
level = debug

[agent]
port = 8765
bind = ::1
sessions = 500
load = 8.5
)";
  const auto parsed = parse_daemon_config_text(kText, "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  const DaemonConfig& config = *parsed;
  EXPECT_EQ(config.scan.session_dir, "/srv/php/sessions");
  EXPECT_EQ(config.scan.active_minutes, 30U);
  EXPECT_EQ(config.rescan_interval_s, 120U);
  EXPECT_EQ(config.scan.max_read_bytes, 131072U);
  EXPECT_EQ(config.scan.max_depth, 2U);
  EXPECT_EQ(config.scan.rule.format, SessionFormat::php_serialize);
  EXPECT_EQ(rules_text(config.scan.rule), "_sf2_attributes contains _security_main");
  EXPECT_EQ(config.scan.rule.unknown_key, "_sf2_meta");
  EXPECT_EQ(config.snapshot_path, "/run/cc/snapshot");
  EXPECT_EQ(config.state_path, "/var/lib/cc/state");
  EXPECT_EQ(config.log_level, "debug");
  EXPECT_EQ(config.agent.port, 8765U);
  EXPECT_EQ(config.agent.bind, "::1");
  EXPECT_EQ(config.agent.sessions_trip, 500U);
  EXPECT_EQ(config.agent.load_trip_centi, 850U);
}

TEST(DaemonConfig, AuthenticatedRuleKeepsAFormatSetBeforeOrAfter) {
  const auto before =
      parse_daemon_config_text("[sessions]\nformat = php_binary\nauthenticated = * contains user\n", "test.conf");
  ASSERT_TRUE(before.has_value()) << before.error().message;
  EXPECT_EQ(before->scan.rule.format, SessionFormat::php_binary);
  EXPECT_EQ(rules_text(before->scan.rule), "* contains user");

  const auto after =
      parse_daemon_config_text("[sessions]\nauthenticated = auth contains id\nformat = php\n", "test.conf");
  ASSERT_TRUE(after.has_value()) << after.error().message;
  EXPECT_EQ(after->scan.rule.format, SessionFormat::php);
  EXPECT_EQ(rules_text(after->scan.rule), "auth contains id");
}

TEST(DaemonConfig, EmptyUnknownKeyDisablesIt) {
  const auto parsed = parse_daemon_config_text("[sessions]\nunknown_key =\n", "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->scan.rule.unknown_key, "");
}

TEST(DaemonConfig, BoundsAreInclusive) {
  const auto low = parse_daemon_config_text(
      "[sessions]\nactive_minutes = 1\nrescan_interval = 1\nmax_read_bytes = 64\nmax_depth = 0\n", "test.conf");
  ASSERT_TRUE(low.has_value()) << low.error().message;
  EXPECT_EQ(low->scan.active_minutes, 1U);
  EXPECT_EQ(low->rescan_interval_s, 1U);
  EXPECT_EQ(low->scan.max_read_bytes, 64U);
  EXPECT_EQ(low->scan.max_depth, 0U);

  const auto high = parse_daemon_config_text(
      "[sessions]\nactive_minutes = 10080\nrescan_interval = 86400\nmax_read_bytes = 16777216\nmax_depth = 8\n",
      "test.conf");
  ASSERT_TRUE(high.has_value()) << high.error().message;
  EXPECT_EQ(high->scan.active_minutes, 10080U);
  EXPECT_EQ(high->rescan_interval_s, 86400U);
  EXPECT_EQ(high->scan.max_read_bytes, 16U << 20);
  EXPECT_EQ(high->scan.max_depth, 8U);
}

TEST(DaemonConfig, CommentsAndWhitespace) {
  constexpr std::string_view kText =
      "  # indented comment\n"
      "[sessions]   \n"
      "  active_minutes   =   15   \n"
      "max_depth = 1 ; an inline comment\n"
      "\n"
      "; dir = relative/ignored\n"
      "# max_read_bytes = 1\n";
  const auto parsed = parse_daemon_config_text(kText, "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->scan.active_minutes, 15U);
  EXPECT_EQ(parsed->scan.max_depth, 1U);
  EXPECT_EQ(parsed->scan.session_dir, "/var/lib/php/sessions");
  EXPECT_EQ(parsed->scan.max_read_bytes, 1024U * 1024U);
}

TEST(DaemonConfig, AppliesOverABase) {
  DaemonConfig base;
  base.scan.session_dir = "/base/sessions";
  base.log_level = "warning";
  base.scan.max_depth = 5;
  const auto parsed = parse_daemon_config_text("[log]\nlevel = error\n", "test.conf", base);
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->log_level, "error");
  EXPECT_EQ(parsed->scan.session_dir, "/base/sessions");
  EXPECT_EQ(parsed->scan.max_depth, 5U);
}

TEST(DaemonConfig, LaterSettingsOverrideEarlierOnes) {
  const auto parsed = parse_daemon_config_text("[sessions]\nmax_depth = 1\n[sessions]\nmax_depth = 4\n", "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->scan.max_depth, 4U);
}

TEST(DaemonConfigErrors, UnknownKeyOrSection) {
  expect_error("[sessions]\ndirectory = /x\n", 2, {"[sessions] directory", "unknown setting"});
  expect_error("[log]\nlevel = info\n[cache]\nsize = 3\n", 4, {"[cache] size", "unknown setting"});
  expect_error("dir = /x\n", 1, {"dir", "unknown setting"});
  expect_error("[snapshot]\ndir = /x\n", 2, {"[snapshot] dir", "unknown setting"});
  expect_error("[Sessions]\ndir = /x\n", 2, {"[Sessions] dir", "unknown setting"});
}

TEST(DaemonConfig, ScanThreadsAndClassifyInactive) {
  const auto low = parse_daemon_config_text("[sessions]\nscan_threads = 1\nclassify_inactive = yes\n", "test.conf");
  ASSERT_TRUE(low.has_value()) << low.error().message;
  EXPECT_EQ(low->scan.scan_threads, 1U);
  EXPECT_TRUE(low->scan.classify_inactive);
  const auto high = parse_daemon_config_text("[sessions]\nscan_threads = 64\nclassify_inactive = off\n", "test.conf");
  ASSERT_TRUE(high.has_value()) << high.error().message;
  EXPECT_EQ(high->scan.scan_threads, 64U);
  EXPECT_FALSE(high->scan.classify_inactive);
  for (const char* text : {"true", "on", "1"}) {
    const auto parsed = parse_daemon_config_text(std::string("[sessions]\nclassify_inactive = ") + text + "\n", "t");
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_TRUE(parsed->scan.classify_inactive) << text;
  }
  expect_error("[sessions]\nscan_threads = 0\n", 2, {"scan_threads", "minimum"});
  expect_error("[sessions]\nscan_threads = 65\n", 2, {"scan_threads"});
  expect_error("[sessions]\nclassify_inactive = maybe\n", 2, {"classify_inactive", "maybe", "yes or no"});
  expect_error("[sessions]\nclassify_inactive =\n", 2, {"classify_inactive"});
}

TEST(DaemonConfigErrors, BadNumbers) {
  expect_bad_sessions_values("active_minutes",
                             {BadValue{"abc", "abc"}, BadValue{"-5", "-5"}, BadValue{"1.5"}, BadValue{""},
                              BadValue{"0", "minimum"}, BadValue{"10081", "too large"}});
  expect_bad_sessions_values("rescan_interval", {BadValue{"0"}, BadValue{"86401"}});
  expect_bad_sessions_values("max_read_bytes",
                             {BadValue{"63"}, BadValue{"16777217"}, BadValue{"99999999999999999999999"}});
  expect_bad_sessions_values("max_depth", {BadValue{"9"}, BadValue{"10"}, BadValue{"0x2"}});
}

TEST(DaemonConfigErrors, RelativePaths) {
  expect_error("[sessions]\ndir = var/lib/php/sessions\n", 2, {"dir", "absolute"});
  expect_error("[sessions]\ndir =\n", 2, {"dir", "absolute"});
  expect_error("[snapshot]\npath = run/snapshot\n", 2, {"[snapshot] path", "absolute"});
  expect_error("[state]\npath = ./state\n", 2, {"[state] path", "absolute"});
}

TEST(DaemonConfigErrors, BadFormatRuleOrLevel) {
  expect_error("[sessions]\nformat = wddx\n", 2, {"format", "wddx"});
  expect_error("[sessions]\nauthenticated = storage\n", 2, {"authenticated", "storage"});
  expect_error("[sessions]\nauthenticated = * has storage\n", 2, {"authenticated"});
  expect_error("[sessions]\nauthenticated = * contains storage extra\n", 2, {"authenticated"});
  expect_error("[log]\nlevel = verbose\n", 2, {"level", "verbose"});
  expect_error("[log]\nlevel = INFO\n", 2, {"level"});
}

TEST(DaemonConfigErrors, AgentSettings) {
  expect_error("[agent]\nport = 65536\n", 2, {"[agent] port", "too large"});
  expect_error("[agent]\nport = http\n", 2, {"[agent] port"});
  expect_error("[agent]\nbind =\n", 2, {"[agent] bind"});
  expect_error("[agent]\nsessions = 0\n", 2, {"[agent] sessions", "greater than 0"});
  expect_error("[agent]\nload = 0\n", 2, {"[agent] load", "greater than 0"});
  expect_error("[agent]\nload = 8.005\n", 2, {"[agent] load"});
  expect_error("[agent]\nweight = 3\n", 2, {"[agent] weight", "unknown setting"});
}

TEST(DaemonConfigErrors, SyntaxErrors) {
  expect_error("[sessions]\nthis line has no equals sign\n", 2, {"syntax error"});
  expect_error("[sessions\ndir = /x\n", 1, {"syntax error"});
}

TEST(DaemonConfigErrors, TheFirstErrorIsReportedWithItsOwnLine) {
  // A syntax error before a bad setting: the message must describe line 2.
  const auto parsed = parse_daemon_config_text("[sessions]\nno equals here\nmax_depth = 99\n", "test.conf");
  ASSERT_FALSE(parsed.has_value());
  const std::string& message = parsed.error().message;
  EXPECT_EQ(message.substr(0, 12), "test.conf:2:") << message;
  EXPECT_EQ(message.find("max_depth"), std::string::npos) << "describes line 3, not line 2: " << message;

  // Two bad settings: the first one, with its line.
  expect_error("[sessions]\nmax_depth = 99\nactive_minutes = 0\n", 2, {"max_depth"});
}

TEST(DaemonConfig, AnOverlongCommentIsStillAComment) {
  const std::string text =
      "# " + std::string(300, 'c') + " = 1\n[sessions]\n; " + std::string(300, 'c') + " max_depth = 1\nmax_depth = 2\n";
  const auto parsed = parse_daemon_config_text(text, "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->scan.max_depth, 2U);
}

TEST(DaemonConfigErrors, AnOverlongLineIsAnErrorNotTruncated) {
  // A value longer than the parser's line buffer must not be cut silently.
  const std::string long_dir = "/srv/" + std::string(300, 'd');
  const auto parsed = parse_daemon_config_text("[sessions]\ndir = " + long_dir + "\n", "test.conf");
  if (parsed.has_value()) {
    EXPECT_EQ(parsed->scan.session_dir, long_dir) << "the path was truncated";
  } else {
    EXPECT_EQ(parsed.error().message.substr(0, 12), "test.conf:2:") << parsed.error().message;
  }
  // Nor may the cut-off end of a long line be parsed as a setting of its own.
  // inih's buffer holds 199 characters: the tail would start with "max_depth".
  const std::string text = "[sessions]\ndir = /srv/" + std::string(188, 'd') + "max_depth = 7\n";
  const auto tail = parse_daemon_config_text(text, "test.conf");
  if (tail.has_value()) {
    EXPECT_EQ(tail->scan.max_depth, 3U);
  } else {
    EXPECT_EQ(tail.error().message.substr(0, 12), "test.conf:2:") << tail.error().message;
  }
}

// ---- load_daemon_config

TEST(LoadDaemonConfig, MissingFileRequiredOrNot) {
  TempDir dir;
  const std::string path = dir / "coupecircuitd.conf";
  const auto optional = load_daemon_config(path, false);
  ASSERT_TRUE(optional.has_value()) << optional.error().message;
  EXPECT_EQ(optional->scan.session_dir, "/var/lib/php/sessions");

  const auto required = load_daemon_config(path, true);
  ASSERT_FALSE(required.has_value());
  EXPECT_NE(required.error().message.find(path), std::string::npos) << required.error().message;
  EXPECT_EQ(required.error().code, ENOENT);
}

TEST(LoadDaemonConfig, ReadsTheFileAndNamesItInErrors) {
  TempDir dir;
  const std::string path = dir / "coupecircuitd.conf";
  test::write_file(path, "[sessions]\ndir = /srv/sessions\n");
  const auto loaded = load_daemon_config(path, true);
  ASSERT_TRUE(loaded.has_value()) << loaded.error().message;
  EXPECT_EQ(loaded->scan.session_dir, "/srv/sessions");

  test::write_file(path, "[sessions]\n\nmax_depth = nine\n");
  const auto bad = load_daemon_config(path, false);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().message.substr(0, path.size() + 3), path + ":3:") << bad.error().message;
}

TEST(LoadDaemonConfig, ADirectoryIsAnErrorNotAnEmptyConfig) {
  TempDir dir;
  for (const bool required : {true, false}) {
    const auto loaded = load_daemon_config(dir.path(), required);
    ASSERT_FALSE(loaded.has_value()) << "a directory was read as an empty configuration";
    EXPECT_NE(loaded.error().message.find(dir.path()), std::string::npos) << loaded.error().message;
  }
}

TEST(LoadDaemonConfig, AnUnreadableFileIsAnErrorEvenWhenOptional) {
  TempDir dir;
  const std::string path = dir / "coupecircuitd.conf";
  test::write_file(path, "[log]\nlevel = debug\n");
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  const std::string failure = test::run_unprivileged([&]() -> std::string {
    const auto loaded = load_daemon_config(path, false);
    if (loaded.has_value()) return "an unreadable file was read as an empty configuration";
    if (loaded.error().message.find(path) == std::string::npos) return "no file name in: " + loaded.error().message;
    return {};
  });
  EXPECT_EQ(failure, "");
}

}  // namespace
}  // namespace coupecircuit

namespace coupecircuit {
namespace {

TEST(DaemonConfigRules, CommaListAndContinuationLines) {
  const auto parsed = parse_daemon_config_text(
      "[sessions]\n"
      "authenticated = _sf2_attributes contains _security_main, _sf2_attributes contains _security_admin\n"
      "    has user_id\n"
      "\thas Zend_Auth*\n"
      "format = igbinary\n",
      "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(rules_text(parsed->scan.rule),
            "_sf2_attributes contains _security_main, _sf2_attributes contains _security_admin, has user_id, has "
            "Zend_Auth*");
  EXPECT_EQ(parsed->scan.rule.format, SessionFormat::igbinary);
}

TEST(DaemonConfigRules, RulesOnlyOnContinuationLines) {
  const auto parsed = parse_daemon_config_text(
      "[sessions]\nauthenticated =\n  _sf2_attributes contains _security_*\n  has user_id\n", "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(rules_text(parsed->scan.rule), "_sf2_attributes contains _security_*, has user_id");
}

TEST(DaemonConfigRules, ALaterLineReplacesTheRules) {
  const auto parsed = parse_daemon_config_text(
      "[sessions]\nauthenticated = has a\n  has b\nactive_minutes = 5\nauthenticated = has c\n", "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(rules_text(parsed->scan.rule), "has c");
}

TEST(DaemonConfigRules, BadRulesNameTheLine) {
  expect_error("[sessions]\nauthenticated = has a\n  b contains\n", 3, {"authenticated", "b contains"});
  expect_error("[sessions]\nauthenticated = has a, * has b\n", 2, {"authenticated", "* has b"});
  expect_error("[sessions]\n\nauthenticated =\nactive_minutes = 5\n", 3, {"authenticated", "no rule"});
  std::string many = "[sessions]\nauthenticated = has k0\n";
  for (int i = 1; i <= 32; ++i) many += "  has k" + std::to_string(i) + "\n";
  expect_error(many, 34, {"authenticated", "at most 32"});
  expect_error("[sessions]\nformat = igbinary2\n", 2, {"format", "igbinary"});
}

TEST(DaemonConfigRules, ReadChunkBytes) {
  const auto parsed = parse_daemon_config_text("[sessions]\nread_chunk_bytes = 4096\nmax_read_bytes = 100000\n",
                                               "test.conf");
  ASSERT_TRUE(parsed.has_value()) << parsed.error().message;
  EXPECT_EQ(parsed->scan.read_chunk_bytes, 4096U);
  EXPECT_EQ(parsed->scan.window_bytes(), 4096U);
  expect_error("[sessions]\nread_chunk_bytes = 4095\n", 2, {"read_chunk_bytes"});
}

}  // namespace
}  // namespace coupecircuit
