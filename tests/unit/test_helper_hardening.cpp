// coupecircuitd and coupecircuitctl against hostile files and start-up
// mistakes: a bad configuration before detaching, relative paths, a bad agent
// address, files and directories that other users control, and cut reasons
// that could rewrite an operator's terminal.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "../stress/run_process.hpp"
#include "atomic_file.hpp"
#include "snapshot.hpp"
#include "snapshot_json.hpp"
#include "state_file.hpp"
#include "status_report.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit::test {
namespace {

using nlohmann::json;

class HelperStart : public ::testing::Test {
 protected:
  void SetUp() override {
    test::make_directory(dir_ / "sessions", 0733);
    test::make_directory(dir_ / "control");
  }
  ProcessResult status() {
    return run_process({kCtl, "--snapshot", dir_ / "run/snapshot", "--state", dir_ / "control/state", "--max-age",
                        "30", "status", "--json"});
  }
  TempDir dir_;
};

// ---- 16.7: start-up

TEST_F(HelperStart, ABadConfigExitsTwoBeforeDetaching) {
  test::write_file(dir_ / "bad.conf", helper_config_text(dir_, "[sessions]\nactive_minutes = banana\n"));
  // Neither --foreground nor --once: the classic daemon that detaches.
  const ProcessResult result = run_process({kDaemon, "--config", dir_ / "bad.conf"});
  EXPECT_EQ(result.exit_code, 2) << result.describe();
  EXPECT_NE(result.err.find(dir_ / "bad.conf" + ":8:"), std::string::npos) << result.describe();
}

TEST_F(HelperStart, AnAgentBindThatIsNotAnAddressIsAConfigError) {
  test::write_file(dir_ / "bad.conf", helper_config_text(dir_, "[agent]\nport = 1\nbind = 999.1.1.1\n"));
  const ProcessResult result = run_process({kDaemon, "--once", "--config", dir_ / "bad.conf"});
  EXPECT_EQ(result.exit_code, 2) << result.describe();
  EXPECT_NE(result.err.find(dir_ / "bad.conf" + ":9:"), std::string::npos) << result.describe();
  EXPECT_NE(result.err.find("bind"), std::string::npos) << result.describe();
}

TEST_F(HelperStart, ARelativeConfigPathWorksOnceDetached) {
  test::write_file(dir_ / "good.conf", helper_config_text(dir_));
  const ProcessResult started =
      run_process({"/bin/sh", "-c", "cd '" + dir_.path() + "' && exec '" + kDaemon + "' --config good.conf >/dev/null 2>helper.log"});
  ASSERT_EQ(started.exit_code, 0) << started.describe();
  // The detached helper publishes: find it through its snapshot, then stop it.
  json document;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    const ProcessResult result = status();
    document = json::parse(result.out, nullptr, false);
    if (!document.is_discarded() && document.value("status", "") == "ok") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(document.value("status", ""), "ok") << "the detached helper never published";
  const auto pid = document["helper_pid"].get<pid_t>();
  ASSERT_GT(pid, 1);
  EXPECT_EQ(::kill(pid, SIGTERM), 0);
}

// ---- 16.8: files and directories of other users

TEST(SnapshotOwnership, AFileOfAnotherUserIsReplacedNotReused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file to another user";
  TempDir dir;
  const std::string path = dir / "snapshot";
  {
    auto first = snapshot::SnapshotWriter::open(path);
    ASSERT_TRUE(first.has_value()) << first.error().message;
  }
  ASSERT_EQ(::chown(path.c_str(), kNobodyId, kNobodyId), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  const struct stat before = test::stat_of(path);
  auto writer = snapshot::SnapshotWriter::open(path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  const struct stat after = test::stat_of(path);
  EXPECT_NE(after.st_ino, before.st_ino) << "replaced by a new file, not reused";
  EXPECT_EQ(after.st_uid, 0U);
  EXPECT_EQ(after.st_mode & 07777, 0644U);
  EXPECT_NE(writer->replaced_because().find("owned by user 65534"), std::string::npos) << writer->replaced_because();

  // The writer's own file, 0644, is reused in place.
  auto again = snapshot::SnapshotWriter::open(path);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(test::stat_of(path).st_ino, after.st_ino);
  EXPECT_TRUE(again->replaced_because().empty());
}

TEST(SnapshotOwnership, AFileWritableByOthersIsReplaced) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  { ASSERT_TRUE(snapshot::SnapshotWriter::open(path).has_value()); }
  ASSERT_EQ(::chmod(path.c_str(), 0666), 0);
  const ino_t before = test::stat_of(path).st_ino;
  auto writer = snapshot::SnapshotWriter::open(path);
  ASSERT_TRUE(writer.has_value());
  EXPECT_NE(test::stat_of(path).st_ino, before);
  EXPECT_NE(writer->replaced_because().find("writable by other users"), std::string::npos);
}

TEST(StateDirectory, WritableByOthersIsRefusedByCtlAndHelper) {
  TempDir dir;
  test::make_directory(dir / "sessions", 0733);
  test::make_directory(dir / "control");
  ASSERT_EQ(::chmod((dir / "control").c_str(), 0777), 0);
  ControlState state;
  state.cut_active = true;
  auto saved = save_state_file(dir / "control/state", state);
  ASSERT_FALSE(saved.has_value());
  EXPECT_NE(saved.error().message.find("writable by other users"), std::string::npos) << saved.error().message;
  EXPECT_EQ(test::list_directory(dir / "control"), std::vector<std::string>{}) << "nothing written";

  test::write_file(dir / "c.conf", helper_config_text(dir));
  const ProcessResult once = run_process({kDaemon, "--once", "--config", dir / "c.conf"});
  EXPECT_EQ(once.exit_code, 1) << once.describe();
  EXPECT_NE(once.err.find("writable by other users"), std::string::npos) << once.describe();

  ASSERT_EQ(::chmod((dir / "control").c_str(), 0755), 0);  // the control case
  EXPECT_TRUE(save_state_file(dir / "control/state", state).has_value());
}

TEST(AtomicFileTest, UncommittedTemporariesAreRemovedAndCommitReplaces) {
  TempDir dir;
  const std::string path = dir / "file";
  test::write_file(path, "old");
  {
    auto file = AtomicFile::create(path, 0640);
    ASSERT_TRUE(file.has_value()) << file.error().message;
    ASSERT_TRUE(file->write_all("half").has_value());
    EXPECT_EQ(test::list_directory(dir.path()).size(), 2U);
  }  // not committed
  EXPECT_EQ(test::list_directory(dir.path()), std::vector<std::string>{"file"});
  EXPECT_EQ(test::read_file(path), "old");

  auto file = AtomicFile::create(path, 0640);
  ASSERT_TRUE(file.has_value());
  ASSERT_TRUE(file->write_all("new").has_value());
  ASSERT_TRUE(file->commit().has_value());
  EXPECT_EQ(test::read_file(path), "new");
  EXPECT_EQ(test::stat_of(path).st_mode & 07777, 0640U);
  EXPECT_EQ(test::list_directory(dir.path()), std::vector<std::string>{"file"});
  EXPECT_EQ(parent_directory("/a/b"), "/a");
  EXPECT_EQ(parent_directory("/a"), "/");
  EXPECT_EQ(parent_directory("a"), ".");
}

// ---- 16.9: terminal safety of cut reasons

TEST(CutReason, ControlAndBidiCharactersAreRefusedAtTheCli) {
  TempDir dir;
  const std::vector<std::string> reasons = {
      "\xc2\x9b" "31m",           // U+009B CSI (C1)
      "evil\xe2\x80\xae" "txt",   // U+202E RIGHT-TO-LEFT OVERRIDE
      "a\xe2\x81\xa6" "b",        // U+2066 LEFT-TO-RIGHT ISOLATE
      "a\xe2\x80\x8f" "b",        // U+200F RIGHT-TO-LEFT MARK
      "a\xc2\x85" "b",            // U+0085 NEXT LINE
      "esc\x1b[2J",               // C0
  };
  for (const auto& reason : reasons) {
    const ProcessResult result = run_process({kCtl, "--state", dir / "state", "--snapshot", dir / "snapshot", "--wait",
                                              "0", "cut", "on", "--reason", reason});
    EXPECT_EQ(result.exit_code, 2) << result.describe();
    EXPECT_NE(::access((dir / "state").c_str(), F_OK), 0) << "nothing written";
  }
  EXPECT_TRUE(validate_cut_reason("Maintenance base de donn\xc3\xa9" "es").has_value());
}

TEST(CutReason, StatusEscapesWhateverTheSnapshotHolds) {
  TempDir dir;
  const std::string path = dir / "snapshot";
  auto writer = snapshot::SnapshotWriter::open(path);
  ASSERT_TRUE(writer.has_value());
  snapshot::Payload payload{};
  payload.flags = snapshot::kFlagCutActive;
  snapshot::copy_text(payload.cut_reason, "a\xe2\x80\xae" "b\xc2\x9b" "c\x1b" "d");
  writer->publish(payload);
  for (const bool as_json : {false, true}) {
    std::vector<std::string> command = {kCtl, "--snapshot", path, "--state", dir / "state", "status"};
    if (as_json) command.emplace_back("--json");
    const ProcessResult result = run_process(command);
    EXPECT_EQ(result.exit_code, 1) << result.describe();
    for (const char* raw : {"\xe2\x80\xae", "\xc2\x9b", "\x1b"}) {
      EXPECT_EQ(result.out.find(raw), std::string::npos) << "raw control in the output\n" << result.describe();
    }
  }
  EXPECT_EQ(escape_for_terminal("a\xe2\x80\xae" "b"), "a\\u{202E}b");
  EXPECT_EQ(escape_for_terminal("\xff"), "\\xFF");
}

}  // namespace
}  // namespace coupecircuit::test

// ---- One snapshot -> JSON function for coupecircuitctl and the status page

namespace coupecircuit::test {
namespace {

TEST(PayloadJson, CtlAndTheStatusPageShareOneSchema) {
  snapshot::Payload payload{};
  payload.writer_pid = 4242;
  payload.sessions_active = 7;
  payload.flags = snapshot::kFlagScanFailed | snapshot::kFlagCutActive;
  snapshot::copy_text(payload.cut_reason, "deploy");
  payload.load_centi[0] = 152;
  const json shared = payload_to_json(payload);
  EXPECT_EQ(shared["helper"]["pid"], 4242);
  EXPECT_EQ(shared["sessions"]["known"], false);
  EXPECT_EQ(shared["load"]["1"], "1.52");
  EXPECT_EQ(shared["cut"]["reason"], "deploy");

  module::StatusReport report;
  report.health = module::Health::fresh;
  report.has_payload = true;
  report.payload = payload;
  const json page = json::parse(module::render_status_json(report));
  for (const auto& [key, value] : shared.items()) {
    ASSERT_TRUE(page.contains(key)) << key;
    if (key == "sessions") {
      for (const auto& [inner, inner_value] : value.items()) EXPECT_EQ(page[key][inner], inner_value) << key << "." << inner;
    } else if (key != "store") {  // the store's age depends on the clock
      EXPECT_EQ(page[key], value) << key;
    }
  }

  TempDir dir;
  auto writer = snapshot::SnapshotWriter::open(dir / "snapshot");
  ASSERT_TRUE(writer.has_value());
  writer->publish(payload);
  const ProcessResult status = run_process({kCtl, "--snapshot", dir / "snapshot", "--state", dir / "state", "status", "--json"});
  const json printed = json::parse(status.out, nullptr, false);
  ASSERT_FALSE(printed.is_discarded()) << status.describe();
  for (const char* key : {"helper", "sessions", "load", "cut", "thresholds", "memory", "pressure_some_avg10"}) {
    EXPECT_EQ(printed[key], shared[key]) << key;
  }
  EXPECT_EQ(printed["helper_pid"], 4242) << "the old spelling is kept one release";
}

}  // namespace
}  // namespace coupecircuit::test
