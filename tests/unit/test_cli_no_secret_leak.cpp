// No session id and no session content leaves the helper: coupecircuitd
// (--once, log level debug) scans sessions whose names are random session
// ids and whose contents hold a unique marker string; neither the ids nor
// the marker appear in the snapshot file, in `coupecircuitctl status
// [--json]` output, or in the helper's stderr. The sessions were read (the
// counts say so), so their contents did pass through the helper.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "../stress/run_process.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit::test {
namespace {

using nlohmann::json;

std::string random_text(std::mt19937_64& random, std::size_t length) {
  static constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string text;
  for (std::size_t i = 0; i < length; ++i) text += kAlphabet[random() % (sizeof kAlphabet - 1)];
  return text;
}

std::string php_string(const std::string& text) {
  return "s:" + std::to_string(text.size()) + ":\"" + text + "\";";
}

TEST(NoSecretLeak, SessionIdsAndContentsStayInTheHelper) {
  std::mt19937_64 random(std::random_device{}());
  const std::string marker = "CCSECRET" + random_text(random, 24);
  TempDir dir;
  test::make_directory(dir / "sessions", 0733);
  test::make_directory(dir / "sessions/a", 0733);  // PHP's "1;" layout
  test::make_directory(dir / "control");

  struct Session {
    std::string relative;
    std::string id;
    std::string content;
  };
  std::vector<Session> sessions;
  auto add = [&](const std::string& directory, const std::string& content) {
    const std::string id = random_text(random, 26);
    const std::string relative = (directory.empty() ? "" : directory + "/") + "sess_" + id;
    sessions.push_back({relative, id, content});
    test::write_file(dir / ("sessions/" + relative), content);
  };
  // Authenticated (the marker is the login and the password hash), anonymous
  // (the marker in a CSRF token), unknown (binary junk around the marker).
  add("", "Default|a:1:{s:11:\"initialized\";b:1;}vzn_abc|a:2:{s:7:\"storage\";" + php_string(marker + "-login") +
              "s:4:\"hash\";" + php_string(marker + "-hash") + "}");
  add("a", "Default|a:1:{s:11:\"initialized\";b:1;}vzn_def|a:1:{s:7:\"storage\";" + php_string(marker + "-2") + "}");
  add("", "csrf|" + php_string(marker + "-csrf"));
  add("a", std::string("\x01\xff junk ", 8) + marker + std::string("\0\0|", 3));

  // A state file with a cut, so the snapshot carries texts too.
  test::write_file(dir / "control/state",
                   R"({"version":1,"cut":{"active":true,"reason":"maintenance","since":1700000000}})");
  const std::string config = dir / "coupecircuitd.conf";
  test::write_file(config, helper_config_text(dir, "[sessions]\nmax_depth = 1\n[log]\nlevel = debug\n"));

  const ProcessResult once = run_process({kDaemon, "--once", "--config", config});
  ASSERT_EQ(once.exit_code, 0) << once.describe();
  const std::vector<std::string> ctl = {kCtl, "--snapshot", dir / "run/snapshot", "--state", dir / "control/state"};
  std::vector<std::string> as_json = ctl;
  as_json.insert(as_json.end(), {"status", "--json"});
  std::vector<std::string> as_text = ctl;
  as_text.push_back("status");
  const ProcessResult status_json = run_process(as_json);
  const ProcessResult status_text = run_process(as_text);
  ASSERT_EQ(status_json.exit_code, 1) << "cut on\n" << status_json.describe();
  ASSERT_EQ(status_text.exit_code, 1) << status_text.describe();

  // The contents went through the helper: every session was classified.
  const json document = json::parse(status_json.out, nullptr, false);
  ASSERT_FALSE(document.is_discarded()) << status_json.describe();
  EXPECT_EQ(document["sessions"]["files_seen"], 4);
  EXPECT_EQ(document["sessions"]["active"]["authenticated"], 2);
  EXPECT_EQ(document["sessions"]["active"]["anonymous"], 1);
  EXPECT_EQ(document["sessions"]["active"]["unknown"], 1);
  EXPECT_NE(once.err.find("CC0010"), std::string::npos) << "the debug scan summary is logged\n" << once.describe();

  const std::string snapshot = test::read_file(dir / "run/snapshot");
  ASSERT_GT(snapshot.size(), 0U);
  const std::vector<std::pair<std::string, std::string>> outputs = {
      {"snapshot file", snapshot},
      {"status --json", status_json.out + status_json.err},
      {"status", status_text.out + status_text.err},
      {"coupecircuitd stderr and stdout", once.err + once.out},
  };
  for (const auto& [what, text] : outputs) {
    EXPECT_EQ(text.find(marker), std::string::npos) << "session content in the " << what;
    EXPECT_EQ(text.find("CCSECRET"), std::string::npos) << "session content in the " << what;
    EXPECT_EQ(text.find("sess_"), std::string::npos) << "a session file name in the " << what;
    for (const auto& session : sessions) {
      EXPECT_EQ(text.find(session.id), std::string::npos) << "session id " << session.id << " in the " << what;
      // Even a part of an id would be a leak.
      EXPECT_EQ(text.find(session.id.substr(0, 12)), std::string::npos) << "part of a session id in the " << what;
    }
  }
  // The search itself works: the session files do hold the marker and ids.
  for (const auto& session : sessions) {
    EXPECT_NE(test::read_file(dir / ("sessions/" + session.relative)).find(marker), std::string::npos);
  }
}

}  // namespace
}  // namespace coupecircuit::test
