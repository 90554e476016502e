// What the web server's user can do with the files coupecircuitd and
// coupecircuitctl write: read the snapshot (and map it), never write it,
// replace it or add a file beside it; never write the state file. Checked in
// a child process that drops to www-data (or nobody), as Apache's children
// run. Also: a reader's mapping is read-only, so a stray store through it
// faults instead of changing what every other reader sees; the writer
// survives its file being truncated under its mapping; and the shipped
// systemd unit keeps CAP_DAC_READ_SEARCH only.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "snapshot.hpp"
#include "state_file.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

using test::TempDir;

// Exit codes of the unprivileged child.
enum ChildFailure : int {
  kOk = 0,
  kCannotDrop = 10,
  kCannotReadSnapshot = 11,
  kCannotMapSnapshot = 12,
  kCouldWriteSnapshot = 13,
  kCouldCreateBeside = 14,
  kCouldRenameOver = 15,
  kCouldWriteState = 16,
  kCouldUnlinkSnapshot = 17,
  kCouldChmodSnapshot = 18,
};

int unprivileged_checks(uid_t uid, gid_t gid, const std::string& run_dir, const std::string& snapshot_path,
                        const std::string& state_path, const std::string& dropbox) {
  if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0 || ::geteuid() == 0) return kCannotDrop;
  const int read_fd = ::open(snapshot_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (read_fd < 0) return kCannotReadSnapshot;
  ::close(read_fd);
  auto mapping = snapshot::ReadOnlyMapping::open(snapshot_path.c_str());
  if (!mapping) return kCannotMapSnapshot;
  if (::open(snapshot_path.c_str(), O_RDWR | O_CLOEXEC) >= 0 || errno != EACCES) return kCouldWriteSnapshot;
  const std::string beside = run_dir + "/planted";
  if (::open(beside.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644) >= 0 || errno != EACCES) {
    return kCouldCreateBeside;
  }
  // A file of its own, renamed over the snapshot (same file system).
  const std::string own = dropbox + "/own";
  const int own_fd = ::open(own.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (own_fd < 0) return kCannotDrop;
  ::close(own_fd);
  if (::rename(own.c_str(), snapshot_path.c_str()) == 0 || errno != EACCES) return kCouldRenameOver;
  if (::unlink(snapshot_path.c_str()) == 0) return kCouldUnlinkSnapshot;
  if (::chmod(snapshot_path.c_str(), 0666) == 0) return kCouldChmodSnapshot;
  if (::open(state_path.c_str(), O_WRONLY | O_CLOEXEC) >= 0 || errno != EACCES) return kCouldWriteState;
  return kOk;
}

TEST(SnapshotAccess, TheWebServersUserReadsButNeverWritesReplacesOrPlants) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to create root-owned files and drop to another user";
  const passwd* user = ::getpwnam("www-data");
  if (user == nullptr) user = ::getpwnam("nobody");
  ASSERT_NE(user, nullptr) << "neither www-data nor nobody exists";
  const uid_t uid = user->pw_uid;
  const gid_t gid = user->pw_gid;

  TempDir dir;
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);  // as /run and /var/lib are
  test::ScopedUmask umask_guard(0077);              // the writers must not depend on the umask
  const std::string run_dir = dir / "coupecircuit";
  const std::string snapshot_path = run_dir + "/snapshot";
  auto writer = snapshot::SnapshotWriter::open(snapshot_path);
  ASSERT_TRUE(writer.has_value()) << writer.error().message;
  writer->publish(snapshot::Payload{});
  const std::string state_path = dir / "state/state";
  ControlState state;
  state.cut_active = true;
  ASSERT_TRUE(save_state_file(state_path, state).has_value());
  const std::string dropbox = dir / "dropbox";  // where the unprivileged user may write
  test::make_directory(dropbox);
  ASSERT_EQ(::chmod(dropbox.c_str(), 01777), 0);

  const struct stat snapshot_info = test::stat_of(snapshot_path);
  EXPECT_EQ(snapshot_info.st_mode & 07777, 0644U);
  EXPECT_EQ(snapshot_info.st_uid, 0U);
  EXPECT_EQ(test::stat_of(run_dir).st_mode & 07777, 0755U);
  EXPECT_EQ(test::stat_of(state_path).st_mode & 07777, 0644U);

  std::fflush(nullptr);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(unprivileged_checks(uid, gid, run_dir, snapshot_path, state_path, dropbox));
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), kOk) << "as " << user->pw_name
                                      << ": 10 cannot drop privileges, 11 cannot read, 12 cannot map, 13 could "
                                         "write the snapshot, 14 could create a file beside it, 15 could rename "
                                         "over it, 16 could write the state file, 17 could unlink, 18 could chmod";
  EXPECT_EQ(test::stat_of(snapshot_path).st_ino, snapshot_info.st_ino);
}

// A snapshot with one payload published, its writer still open.
class PublishedSnapshot : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = snapshot::SnapshotWriter::open(path);
    ASSERT_TRUE(opened.has_value()) << opened.error().message;
    writer.emplace(std::move(*opened));
    writer->publish(snapshot::Payload{});
  }

  TempDir dir;
  const std::string path = dir / "snapshot";
  std::optional<snapshot::SnapshotWriter> writer;
};

TEST_F(PublishedSnapshot, AStoreThroughAReadersMappingFaults) {
  auto mapping = snapshot::ReadOnlyMapping::open(path.c_str());
  ASSERT_TRUE(mapping.has_value());
  std::fflush(nullptr);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::signal(SIGSEGV, SIG_DFL);
    auto* word = const_cast<volatile std::uint64_t*>(&mapping->file()->sync.sequence);  // NOLINT
    *word = 1;  // must fault
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  // SIGSEGV (or a sanitizer's report of it): the store never completed.
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_EQ(snapshot::load_sequence(*mapping->file()), 2U) << "the file is unchanged";
}

// The writer's side of a truncated file: storing into the missing pages
// would raise SIGBUS in coupecircuitd; publish and heartbeat check the size
// first, do nothing, and ask to re-open.
TEST_F(PublishedSnapshot, TheWriterSurvivesAFileTruncatedUnderItsMapping) {
  for (const off_t size : {off_t{0}, static_cast<off_t>(snapshot::kTotalSize / 2)}) {
    ASSERT_EQ(::truncate(path.c_str(), size), 0);
    writer->publish(snapshot::Payload{});  // would be SIGBUS without the check
    writer->heartbeat();
    EXPECT_TRUE(writer->needs_reopen());
    EXPECT_EQ(test::stat_of(path).st_size, size) << "nothing was written";
  }
  auto reopened = snapshot::SnapshotWriter::open(path);
  ASSERT_TRUE(reopened.has_value()) << reopened.error().message;
  reopened->publish(snapshot::Payload{});
  EXPECT_TRUE(snapshot::read_snapshot(path.c_str()).has_value());
}

// The shipped systemd unit: root, but with CAP_DAC_READ_SEARCH as the only
// capability (it reads www-data's 0600 session files, it writes only files
// root owns), no new privileges, no network, a 0022 umask and 0755 runtime
// and state directories (the web server's user reads the snapshot).
TEST(ShippedUnit, RootWithOnlyDacReadSearchAndNoNetwork) {
  // This file is tests/unit/ of the source tree (CMake compiles it by its absolute path).
  const std::string unit = test::read_file(
      (std::filesystem::path(__FILE__).parent_path() / "../../conf.d/coupecircuitd.service").lexically_normal().string());
  ASSERT_FALSE(unit.empty());
  std::vector<std::string> settings;
  std::size_t start = 0;
  while (start < unit.size()) {
    const auto end = unit.find('\n', start);
    const std::string line = unit.substr(start, end == std::string::npos ? std::string::npos : end - start);
    start = end == std::string::npos ? unit.size() : end + 1;
    if (!line.empty() && line[0] != '#' && line[0] != '[') settings.push_back(line);
  }
  auto values_of = [&](const std::string& key) {
    std::vector<std::string> values;
    for (const auto& line : settings) {
      if (line.rfind(key + "=", 0) == 0) values.push_back(line.substr(key.size() + 1));
    }
    return values;
  };
  EXPECT_EQ(values_of("CapabilityBoundingSet"), std::vector<std::string>{"CAP_DAC_READ_SEARCH"});
  EXPECT_TRUE(values_of("AmbientCapabilities").empty());
  EXPECT_TRUE(values_of("User").empty()) << "runs as root (the snapshot and state belong to root)";
  EXPECT_EQ(values_of("NoNewPrivileges"), std::vector<std::string>{"yes"});
  EXPECT_EQ(values_of("UMask"), std::vector<std::string>{"0022"});
  EXPECT_EQ(values_of("RuntimeDirectoryMode"), std::vector<std::string>{"0755"});
  EXPECT_EQ(values_of("StateDirectoryMode"), std::vector<std::string>{"0755"});
  EXPECT_EQ(values_of("ProtectSystem"), std::vector<std::string>{"strict"});
  EXPECT_EQ(values_of("PrivateNetwork"), std::vector<std::string>{"yes"});
  EXPECT_EQ(values_of("RestrictAddressFamilies"), std::vector<std::string>{"AF_UNIX"});
}

}  // namespace
}  // namespace coupecircuit
