// Bad input at the command line, through the real binaries:
//  - coupecircuitctl with bad arguments exits 2 with the usage on stderr and
//    leaves the state file byte-identical (same inode, same mtime, no new
//    file beside it);
//  - coupecircuitd with a bad configuration exits 2 and names file:line;
//  - a corrupted state file: coupecircuitd --once still publishes (no cut,
//    state_file_invalid in `coupecircuitctl status --json`), logs CC0031, and
//    `coupecircuitctl cut on` refuses (exit 1) without touching the file;
//  - coupecircuitctl status on a damaged snapshot (unterminated texts, bytes
//    that are not UTF-8) prints valid output instead of aborting.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "../stress/run_process.hpp"
#include "session_test_support.hpp"
#include "snapshot.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit::test {
namespace {

using nlohmann::json;

std::string lowercase(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return text;
}

struct FileIdentity {
  std::string bytes;
  ino_t inode = 0;
  std::int64_t mtime_ns = 0;
  std::vector<std::string> siblings;
  bool operator==(const FileIdentity&) const = default;
};

FileIdentity identity_of(const std::string& directory, const std::string& path) {
  FileIdentity identity;
  identity.bytes = test::read_file(path);
  const struct stat info = test::stat_of(path);
  identity.inode = info.st_ino;
  identity.mtime_ns = static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000LL + info.st_mtim.tv_nsec;
  identity.siblings = test::list_directory(directory);
  return identity;
}

// coupecircuitctl on this state file and snapshot, without waiting for a helper.
ProcessResult run_ctl(const std::string& state, const std::string& snapshot,
                      const std::vector<std::string>& arguments) {
  std::vector<std::string> command = {kCtl, "--state", state, "--snapshot", snapshot, "--wait", "0"};
  command.insert(command.end(), arguments.begin(), arguments.end());
  return run_process(command);
}

// A control directory with a state file made by coupecircuitctl itself.
class CtlBadArguments : public ::testing::Test {
 protected:
  void SetUp() override {
    state_ = dir_ / "state";
    snapshot_ = dir_ / "snapshot";  // no helper running: changes are saved only
    const ProcessResult made = ctl({"cut", "on", "--reason", "garder"});
    ASSERT_EQ(made.exit_code, 0) << made.describe();
    const ProcessResult vhost = ctl({"threshold", "set", "sessions", "12", "--vhost", "a.test"});
    ASSERT_EQ(vhost.exit_code, 0) << vhost.describe();
    ASSERT_NE(test::read_file(state_).find("garder"), std::string::npos);
  }

  ProcessResult ctl(const std::vector<std::string>& arguments) { return run_ctl(state_, snapshot_, arguments); }

  TempDir dir_;
  std::string state_;
  std::string snapshot_;
};

TEST_F(CtlBadArguments, ExitTwoWithUsageAndTheStateFileUntouched) {
  std::vector<std::vector<std::string>> bad = {
      {},
      {"bogus"},
      {"cut"},
      {"cut", "maybe"},
      {"cut", "on", "--reason"},
      {"cut", "off", "extra"},
      {"cut", "on", "now"},
      {"threshold"},
      {"threshold", "set"},
      {"threshold", "set", "load"},
      {"threshold", "set", "users", "3"},
      {"threshold", "set", "sessions", "12", "extra"},
      {"threshold", "unset", "sessions", "--vhost", "x;rm"},
      {"threshold", "unset"},
      {"threshold", "list", "extra"},
      {"status", "extra"},
      {"status", "--bogus"},
      {"--max-age", "abc", "status"},
      {"--max-age", "0", "status"},
      {"--wait", "-1", "cut", "off"},
  };
  // Each bad value under the one command that takes it.
  const std::vector<std::string> bad_reasons = {"line\x01two",           "tab\there", "new\nline", "del\x7f",
                                                std::string(128, 'r'),
                                                "op\xe9ration",           // Latin-1, not UTF-8
                                                "\xed\xa0\x80surrogate",  // UTF-16 surrogate in UTF-8
                                                "\xc0\xafoverlong"};
  for (const auto& reason : bad_reasons) bad.push_back({"cut", "on", "--reason", reason});
  for (const char* load : {"1.234", "-1", "1,5", "nan", "1000000.01"}) {
    bad.push_back({"threshold", "set", "load", load});
  }
  for (const char* sessions : {"-1", "1e3", " 12", "1000000000001", "99999999999999999999999"}) {
    bad.push_back({"threshold", "set", "sessions", sessions});
  }
  const std::vector<std::string> bad_vhosts = {"bad name", "", "a/b", std::string(88, 'v')};
  for (const auto& vhost : bad_vhosts) bad.push_back({"threshold", "set", "sessions", "12", "--vhost", vhost});
  const FileIdentity before = identity_of(dir_.path(), state_);
  for (const auto& arguments : bad) {
    std::string shown;
    for (const auto& argument : arguments) shown += "[" + argument + "] ";
    const ProcessResult result = ctl(arguments);
    EXPECT_EQ(result.exit_code, 2) << shown << result.describe();
    EXPECT_NE(lowercase(result.err).find("usage"), std::string::npos) << shown << ": no usage on stderr\n"
                                                                      << result.describe();
    EXPECT_EQ(identity_of(dir_.path(), state_), before) << shown << " changed the state file or its directory";
  }
  // The state is still the one made in SetUp.
  EXPECT_NE(test::read_file(state_).find("garder"), std::string::npos);
}

TEST_F(CtlBadArguments, AValidChangeStillWorksAfterwards) {
  // The control case: the same invocation with good arguments changes the file.
  const FileIdentity before = identity_of(dir_.path(), state_);
  const ProcessResult result = ctl({"threshold", "set", "load", "1.23"});
  EXPECT_EQ(result.exit_code, 0) << result.describe();
  EXPECT_NE(identity_of(dir_.path(), state_).bytes, before.bytes);
  EXPECT_NE(test::read_file(state_).find("\"1.23\""), std::string::npos);
}

// ---- coupecircuitd with a bad configuration

struct BadConfig {
  const char* text;
  int line;
  const char* says;
};

TEST(DaemonBadConfig, ExitTwoAndTheMessageNamesFileAndLine) {
  const std::vector<BadConfig> cases = {
      {"[sessions]\nactive_minutes = x\n", 2, "active_minutes"},
      {"; comment\n\n[sessions]\ndir = /var/lib/php/sessions\nmax_depth = 9\n", 5, "max_depth"},
      {"[sessions]\ndir = relative/path\n", 2, "absolute"},
      {"[sessoins]\ndir = /x\n", 2, "unknown setting"},
      {"[log]\nlevel = verbose\n", 2, "level"},
      {"[sessions\ndir = /x\n", 1, "syntax error"},
      {"[sessions]\nauthenticated = storage\n", 2, "authenticated"},
      {"[snapshot]\npath = /run/x\n[state]\npath = state\n", 4, "absolute"},
  };
  for (const auto& bad : cases) {
    TempDir dir;
    const std::string config = dir / "bad.conf";
    test::write_file(config, bad.text);
    const ProcessResult result = run_process({kDaemon, "--once", "--config", config, "--snapshot", dir / "snapshot",
                                              "--state", dir / "state"});
    EXPECT_EQ(result.exit_code, 2) << bad.text << result.describe();
    const std::string where = config + ":" + std::to_string(bad.line) + ":";
    EXPECT_NE(result.err.find(where), std::string::npos) << "expected " << where << "\n" << result.describe();
    EXPECT_NE(result.err.find(bad.says), std::string::npos) << result.describe();
    EXPECT_NE(result.err.find("CC0005"), std::string::npos) << result.describe();
    EXPECT_NE(::access((dir / "snapshot").c_str(), F_OK), 0) << "nothing is published with a bad configuration";
  }
}

TEST(DaemonBadConfig, MissingExplicitConfigAndBadFlagsExitTwo) {
  TempDir dir;
  const ProcessResult missing = run_process({kDaemon, "--once", "--config", dir / "absent.conf"});
  EXPECT_EQ(missing.exit_code, 2) << missing.describe();
  EXPECT_NE(missing.err.find(dir / "absent.conf"), std::string::npos) << missing.describe();

  test::make_directory(dir / "conf.d");
  const ProcessResult directory = run_process({kDaemon, "--once", "--config", dir / "conf.d"});
  EXPECT_EQ(directory.exit_code, 2) << directory.describe();
  EXPECT_NE(directory.err.find("not a regular file"), std::string::npos) << directory.describe();

  for (const std::vector<std::string>& flags : std::vector<std::vector<std::string>>{
           {"--bogus"}, {"--active-minutes", "0"}, {"--interval", "x"}, {"--session-dir", dir / "missing"}}) {
    std::vector<std::string> command = {kDaemon, "--once"};
    command.insert(command.end(), flags.begin(), flags.end());
    const ProcessResult result = run_process(command);
    EXPECT_EQ(result.exit_code, 2) << flags[0] << "\n" << result.describe();
  }
}

// ---- A corrupted state file

class CorruptedState : public ::testing::Test {
 protected:
  void SetUp() override {
    test::make_directory(dir_ / "sessions", 0733);
    test::write_file(dir_ / "sessions/sess_abc", kAuthenticated);
    config_ = dir_ / "coupecircuitd.conf";
    test::write_file(config_, helper_config_text(dir_));
    test::make_directory(dir_ / "control");
    state_ = dir_ / "control/state";
  }

  ProcessResult ctl(const std::vector<std::string>& arguments) {
    return run_ctl(state_, dir_ / "run/snapshot", arguments);
  }

  TempDir dir_;
  std::string config_;
  std::string state_;
};

TEST_F(CorruptedState, TheHelperStillPublishesWithoutACutAndCtlRefusesToWrite) {
  const std::vector<std::string> corrupted_files = {
      R"({"version": 1, "cut": {"active": tr)", "not json", R"({"version": 2})",
      R"({"version":1,"cut":{"active":true,"reason":"a\u0001b"}})", "\xff\xfe{\"version\":1}"};
  for (const std::string& corrupted : corrupted_files) {
    SCOPED_TRACE(corrupted);
    test::write_file(state_, corrupted);
    const FileIdentity before = identity_of(dir_ / "control", state_);

    const ProcessResult once = run_process({kDaemon, "--once", "--config", config_});
    EXPECT_EQ(once.exit_code, 0) << once.describe();
    EXPECT_NE(once.err.find("CC0031"), std::string::npos) << once.describe();
    EXPECT_NE(once.err.find(state_), std::string::npos) << "the message names the file\n" << once.describe();

    const ProcessResult status = ctl({"status", "--json"});
    EXPECT_EQ(status.exit_code, 0) << status.describe();
    const json document = json::parse(status.out, nullptr, false);
    ASSERT_FALSE(document.is_discarded()) << status.describe();
    EXPECT_EQ(document["status"], "ok");
    EXPECT_EQ(document["state_file_invalid"], true);
    EXPECT_EQ(document["cut"]["active"], false);
    EXPECT_EQ(document["sessions"]["active_authenticated"], 1) << "the scan was published";

    for (const std::vector<std::string>& change : std::vector<std::vector<std::string>>{
             {"cut", "on"}, {"cut", "off"}, {"threshold", "set", "sessions", "3"}, {"threshold", "unset", "load"}}) {
      const ProcessResult refused = ctl(change);
      EXPECT_EQ(refused.exit_code, 1) << change[0] << " " << change[1] << "\n" << refused.describe();
      EXPECT_NE(refused.err.find("nothing was changed"), std::string::npos) << refused.describe();
      EXPECT_EQ(identity_of(dir_ / "control", state_).bytes, before.bytes);
      EXPECT_EQ(identity_of(dir_ / "control", state_).inode, before.inode);
    }
    const FileIdentity after = identity_of(dir_ / "control", state_);
    // The lock file is the only thing coupecircuitctl may leave beside it.
    std::vector<std::string> expected_siblings = before.siblings;
    if (std::find(expected_siblings.begin(), expected_siblings.end(), "state.lock") == expected_siblings.end()) {
      expected_siblings.push_back("state.lock");
      std::sort(expected_siblings.begin(), expected_siblings.end());
    }
    EXPECT_EQ(after.bytes, before.bytes);
    EXPECT_EQ(after.mtime_ns, before.mtime_ns);
    EXPECT_EQ(after.siblings, expected_siblings);
  }
}

// A session store the helper cannot read is an error, not "0 sessions":
// coupecircuitctl status exits 3 and says why.
TEST_F(CorruptedState, SessionsUnknownMakesStatusExitThree) {
  test::write_file(dir_ / "not-a-directory", "");
  test::write_file(config_, "[sessions]\ndir = " + (dir_ / "not-a-directory") + "\n[snapshot]\npath = " +
                                (dir_ / "run/snapshot") + "\n[state]\npath = " + state_ + "\n");
  const ProcessResult once = run_process({kDaemon, "--once", "--config", config_});
  EXPECT_EQ(once.exit_code, 1) << once.describe();
  const ProcessResult status = ctl({"status", "--json"});
  EXPECT_EQ(status.exit_code, 3) << status.describe();
  const json document = json::parse(status.out, nullptr, false);
  ASSERT_FALSE(document.is_discarded()) << status.describe();
  EXPECT_EQ(document["status"], "sessions_unknown");
  EXPECT_EQ(document["sessions"]["known"], false);
  const ProcessResult text = ctl({"status"});
  EXPECT_EQ(text.exit_code, 3) << text.describe();
  EXPECT_NE(text.out.find("UNKNOWN"), std::string::npos) << text.describe();
}

// The configured session directory may itself be a symbolic link (the
// command-line check follows it, so does the scanner); links inside it are
// never followed.
TEST_F(CorruptedState, ATopLevelSymlinkedSessionDirectoryIsFollowed) {
  ASSERT_EQ(::symlink((dir_ / "sessions").c_str(), (dir_ / "sessions-link").c_str()), 0);
  const ProcessResult once = run_process({kDaemon, "--once", "--config", config_, "--session-dir", dir_ / "sessions-link"});
  EXPECT_EQ(once.exit_code, 0) << once.describe();
  const ProcessResult status = ctl({"status", "--json"});
  EXPECT_EQ(status.exit_code, 0) << status.describe();
  const json document = json::parse(status.out, nullptr, false);
  ASSERT_FALSE(document.is_discarded()) << status.describe();
  EXPECT_EQ(document["sessions"]["known"], true);
  EXPECT_EQ(document["sessions"]["active_authenticated"], 1);
}

TEST_F(CorruptedState, AValidStateFileIsPublishedAsTheControlCase) {
  const ProcessResult made = ctl({"cut", "on", "--reason", "maintenance"});
  ASSERT_EQ(made.exit_code, 0) << made.describe();
  const ProcessResult once = run_process({kDaemon, "--once", "--config", config_});
  EXPECT_EQ(once.exit_code, 0) << once.describe();
  EXPECT_EQ(once.err.find("CC0031"), std::string::npos) << once.describe();
  const ProcessResult status = ctl({"status", "--json"});
  EXPECT_EQ(status.exit_code, 1) << "cut: attention\n" << status.describe();
  const json document = json::parse(status.out, nullptr, false);
  ASSERT_FALSE(document.is_discarded()) << status.describe();
  EXPECT_EQ(document["state_file_invalid"], false);
  EXPECT_EQ(document["cut"]["active"], true);
  EXPECT_EQ(document["cut"]["reason"], "maintenance");
}

// ---- coupecircuitctl status on a damaged snapshot

TEST(CtlDamagedSnapshot, UnterminatedTextsAndInvalidUtf8NeverAbortTheStatus) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = snapshot::SnapshotWriter::open(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  snapshot::Payload payload{};
  payload.flags = snapshot::kFlagCutActive;
  std::memset(payload.cut_reason, 0xff, sizeof payload.cut_reason);  // no NUL, not UTF-8
  payload.global_override.has_load = 1;
  std::memset(payload.global_override.load_text, '9', sizeof payload.global_override.load_text);
  payload.vhost_override_count = snapshot::kMaxVhostOverrides;
  for (auto& entry : payload.vhost_overrides) {
    std::memset(entry.name, 0xc3, sizeof entry.name);  // lead bytes without their continuation
    entry.thresholds.has_sessions = 1;
    std::memset(entry.thresholds.sessions_text, 'x', sizeof entry.thresholds.sessions_text);
  }
  payload.vhost_overrides[1].name[0] = 'b';  // two distinct names at least
  writer->publish(payload);

  const ProcessResult as_json = run_process({kCtl, "--snapshot", path, "--state", dir / "state", "status", "--json"});
  EXPECT_EQ(as_json.signal, 0) << as_json.describe();
  EXPECT_EQ(as_json.exit_code, 1) << "cut: attention\n" << as_json.describe();
  const json document = json::parse(as_json.out, nullptr, false);
  ASSERT_FALSE(document.is_discarded()) << as_json.describe();
  EXPECT_EQ(document["cut"]["active"], true);
  // Each text is read within its own field: the reason is 128 replaced bytes,
  // not the reason followed by whatever comes after it.
  EXPECT_EQ(document["cut"]["reason"].get<std::string>().size(), 128U * 3) << "128 x U+FFFD";
  EXPECT_EQ(document["thresholds"]["global"]["load"], std::string(16, '9'));

  const ProcessResult as_text = run_process({kCtl, "--snapshot", path, "--state", dir / "state", "status"});
  EXPECT_EQ(as_text.signal, 0) << as_text.describe();
  EXPECT_EQ(as_text.exit_code, 1) << as_text.describe();
  EXPECT_NE(as_text.out.find("load " + std::string(16, '9') + "\n"), std::string::npos) << as_text.describe();
}

TEST(CtlDamagedSnapshot, APathThatIsNotUtf8IsReportedNotAborted) {
  TempDir dir;
  const std::string path = dir / "snap\xff\xfeshot";
  const ProcessResult result = run_process({kCtl, "--snapshot", path, "--state", dir / "state", "status", "--json"});
  EXPECT_EQ(result.signal, 0) << result.describe();
  EXPECT_EQ(result.exit_code, 3) << result.describe();
  const json document = json::parse(result.out, nullptr, false);
  ASSERT_FALSE(document.is_discarded()) << result.describe();
  EXPECT_EQ(document["status"], "missing");
}

}  // namespace
}  // namespace coupecircuit::test
