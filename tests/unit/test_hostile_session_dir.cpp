// A hostile session directory, through SessionScanner and through the real
// coupecircuitd --once: symbolic links to a secret outside the directory
// (never opened: checked with inotify IN_OPEN on the target), a symlinked
// sub-directory (never entered), FIFOs (never block: every scan runs under a
// deadline), unix sockets, device nodes, a 1 GiB sparse file (the read cap
// holds), binary junk, names of 255 bytes, files deleted and replaced while
// scans run, and a directory of 100,000 entries (1,000,000 with
// COUPECIRCUIT_LONG_TESTS=1). The helper never hangs, never follows a link,
// never crashes, and counts the rest exactly.
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "../stress/run_process.hpp"
#include "session_scanner.hpp"
#include "session_test_support.hpp"
#include "snapshot.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

using test::active_counts;
using test::describe;
using test::kAnonymous;
using test::kAuthenticated;
using test::kUnknown;
using test::TempDir;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kEmptyIndex = static_cast<std::size_t>(SessionClass::empty);
constexpr std::size_t kAnonymousIndex = static_cast<std::size_t>(SessionClass::anonymous);
constexpr std::size_t kUnknownIndex = static_cast<std::size_t>(SessionClass::unknown);
constexpr std::size_t kAuthenticatedIndex = static_cast<std::size_t>(SessionClass::authenticated);

// Aborts the test binary when a scan runs past its deadline: a hang is a
// failure, never a stuck test run.
class Watchdog {
 public:
  Watchdog(std::chrono::seconds limit, std::string what)
      : what_(std::move(what)), thread_([this, limit] {
          std::unique_lock lock(mutex_);
          if (!done_changed_.wait_for(lock, limit, [this] { return done_; })) {
            std::fprintf(stderr, "FATAL: %s did not finish within %lld s (hang)\n", what_.c_str(),
                         static_cast<long long>(limit.count()));
            std::abort();
          }
        }) {}
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_changed_.notify_all();
    thread_.join();
  }

 private:
  std::string what_;
  std::mutex mutex_;
  std::condition_variable done_changed_;
  bool done_ = false;
  std::thread thread_;
};

// Records IN_OPEN on watched paths: a directory watch reports opens of the
// directory itself (empty name) and of every entry in it (by name).
class OpenWatch {
 public:
  OpenWatch() : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) { EXPECT_GE(fd_, 0) << std::strerror(errno); }
  OpenWatch(const OpenWatch&) = delete;
  OpenWatch& operator=(const OpenWatch&) = delete;
  ~OpenWatch() {
    if (fd_ >= 0) ::close(fd_);
  }

  void watch(const std::string& path) {
    const int wd = ::inotify_add_watch(fd_, path.c_str(), IN_OPEN | IN_ACCESS | IN_DONT_FOLLOW);
    ASSERT_GE(wd, 0) << path << ": " << std::strerror(errno);
    paths_[wd] = path;
  }

  // Every open or read seen so far, as "watched path" or "watched path/name".
  std::vector<std::string> drain() {
    alignas(inotify_event) char buffer[64 * 1024];
    for (;;) {
      const ssize_t length = ::read(fd_, buffer, sizeof buffer);
      if (length <= 0) break;
      for (ssize_t offset = 0; offset < length;) {
        const auto* event = reinterpret_cast<const inotify_event*>(buffer + offset);
        offset += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
        if ((event->mask & IN_Q_OVERFLOW) != 0) {
          seen_.push_back("(inotify overflow)");
          continue;
        }
        std::string where = paths_[event->wd];
        if (event->len > 0 && event->name[0] != '\0') where.append(1, '/').append(event->name);
        seen_.push_back(where);
      }
    }
    std::sort(seen_.begin(), seen_.end());
    seen_.erase(std::unique(seen_.begin(), seen_.end()), seen_.end());
    return seen_;
  }

 private:
  int fd_;
  std::map<int, std::string> paths_;
  std::vector<std::string> seen_;
};

void make_fifo(const std::string& path) { ASSERT_EQ(::mkfifo(path.c_str(), 0600), 0) << path << ": " << std::strerror(errno); }

void make_symlink(const std::string& target, const std::string& path) {
  ASSERT_EQ(::symlink(target.c_str(), path.c_str()), 0) << path << ": " << std::strerror(errno);
}

// A bound unix socket left in the directory (the descriptor is closed; the
// socket file stays).
void make_socket(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof address.sun_path) << path;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);
  ::close(fd);
}

// Device nodes like /dev/null, /dev/zero (character) and a loop device
// (block). False when this process may not create device nodes.
bool make_devices(const std::string& directory, std::vector<std::string>* names) {
  const struct {
    const char* name;
    mode_t type;
    dev_t device;
  } nodes[] = {{"sess_null", S_IFCHR, makedev(1, 3)}, {"sess_zero", S_IFCHR, makedev(1, 5)},
               {"sess_loop", S_IFBLK, makedev(7, 0)}};
  for (const auto& node : nodes) {
    if (::mknod((directory + "/" + node.name).c_str(), node.type | 0600, node.device) != 0) return false;
    names->push_back(node.name);
  }
  return true;
}

std::string binary_junk(std::size_t size, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string junk(size, '\0');
  for (auto& c : junk) c = static_cast<char>(random() & 0xff);
  return junk;
}

// Writes content at offset in a file of `size` bytes (sparse elsewhere).
void write_sparse(const std::string& path, std::string_view head, off_t size, off_t tail_offset,
                  std::string_view tail) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << std::strerror(errno);
  ASSERT_EQ(::pwrite(fd, head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
  ASSERT_EQ(::pwrite(fd, tail.data(), tail.size(), tail_offset), static_cast<ssize_t>(tail.size()));
  ASSERT_EQ(::ftruncate(fd, size), 0);
  ::close(fd);
}

constexpr std::string_view kMarker = R"(vzn|a:1:{s:7:"storage";s:1:"x";})";

// An anonymous php-format session of exactly `size` bytes.
std::string anonymous_of_size(std::size_t size) {
  for (std::size_t n = 0; n < size; ++n) {
    std::string text = std::string(kAnonymous) + "pad|s:" + std::to_string(n) + ":\"" + std::string(n, 'x') + "\";";
    if (text.size() == size) return text;
  }
  ADD_FAILURE() << "cannot build an anonymous session of " << size << " bytes";
  return {};
}

// 1 GiB, sparse: an anonymous session of exactly cap bytes, then the marker.
void write_capped_big_file(const std::string& path, std::size_t cap) {
  const std::string head = anonymous_of_size(cap);
  ASSERT_EQ(head.size(), cap);
  // Not vacuous: what lies just past the cap does classify as authenticated.
  ASSERT_EQ(classify_session(head + std::string(kMarker), false, ClassifierRule{}), SessionClass::authenticated);
  ASSERT_EQ(classify_session(head, true, ClassifierRule{}), SessionClass::unknown);
  write_sparse(path, head, 1LL << 30, static_cast<off_t>(cap), kMarker);
}

constexpr std::size_t kHostileReadCap = 64 * 1024;

// What the hostile directory must count to.
struct Expected {
  SessionCounts counts;
  std::uint64_t skipped = 0;
  std::uint64_t directories = 0;
  std::set<std::string> read_names;  // regular, non-empty session files at the top level
  std::vector<std::string> devices;
  std::string outside;               // the directory the links point into
  std::string secret;                // an authenticated session outside
  std::string outside_fifo;
};

constexpr unsigned kHostileMaxDepth = 3;

// Builds the hostile directory in root, its link targets in outside.
void build_hostile_directory(const std::string& root, const std::string& outside, Expected* expected) {
  expected->outside = outside;
  // Outside: an authenticated session (a stand-in for /etc/shadow: reading
  // it would count), a FIFO, and a session in a directory reached by link.
  expected->secret = outside + "/shadow";
  test::write_file(expected->secret, kAuthenticated);
  expected->outside_fifo = outside + "/fifo";
  make_fifo(expected->outside_fifo);
  test::write_file(outside + "/sess_outside", kAuthenticated);

  auto regular = [&](const std::string& name, std::string_view content) {
    test::write_file(root + "/" + name, content);
    const bool session = name.rfind("sess_", 0) == 0 && name.size() > 5;
    if (session && !content.empty() && name.find('/') == std::string::npos) expected->read_names.insert(name);
  };
  regular("sess_auth", kAuthenticated);
  regular("sess_anon", kAnonymous);
  regular("sess_unknown", kUnknown);
  regular("sess_empty", "");
  regular("sess_junk", binary_junk(4096, 42));
  regular("sess_", kAuthenticated);      // the prefix alone is no session name
  regular(".sess_hidden", kAuthenticated);
  regular("notes.txt", kAuthenticated);

  // 1 GiB, sparse: a well-formed anonymous session filling the read cap, a
  // login marker right after it. Within the cap the file is truncated
  // without a marker: unknown; one byte more read would make it
  // authenticated.
  write_capped_big_file(root + "/sess_big", kHostileReadCap);
  expected->read_names.insert("sess_big");

  const std::string long_name = "sess_" + std::string(250, 'l');
  ASSERT_EQ(long_name.size(), 255U);
  regular(long_name, kAuthenticated);
  const std::string long_directory = std::string(255, 'd');
  test::make_directory(root + "/" + long_directory);
  regular(long_directory + "/" + "sess_" + std::string(250, 'a'), kAnonymous);
  // Three levels deep is counted, the fourth is beyond max_depth.
  test::make_directory(root + "/1");
  test::make_directory(root + "/1/" + std::string(255, '2'));
  test::make_directory(root + "/1/" + std::string(255, '2') + "/3");
  test::make_directory(root + "/1/" + std::string(255, '2') + "/3/4");
  regular("1/" + std::string(255, '2') + "/3/sess_deep", kAuthenticated);
  regular("1/" + std::string(255, '2') + "/3/4/sess_too_deep", kAuthenticated);

  make_symlink(expected->secret, root + "/sess_secret");
  make_symlink(expected->outside_fifo, root + "/sess_fifo_link");
  make_symlink(root + "/nowhere", root + "/sess_dangling");
  make_symlink(outside, root + "/linked");            // a directory link: not entered
  make_symlink(outside, root + "/sess_linked");       // same, with a session name
  make_symlink(root + "/sess_auth", root + "/sess_alias");  // even inside the directory
  make_fifo(root + "/sess_fifo");                      // no writer: a blocking open would hang
  make_socket(root + "/sess_socket");
  const bool devices = make_devices(root, &expected->devices);
  if (!devices) std::printf("[ hostile  ] cannot create device nodes here (%s): not part of this run\n", std::strerror(errno));

  // auth: sess_auth, long name, sess_deep; anonymous: sess_anon, the long
  // directory's session; unknown: sess_unknown, sess_junk, sess_big.
  expected->counts = active_counts({1, 2, 3, 3});
  // sess_secret, sess_fifo_link, sess_dangling, sess_linked, sess_alias,
  // sess_fifo, sess_socket and the device nodes.
  expected->skipped = 7 + expected->devices.size();
  expected->directories = 5;  // root, the long directory, 1, 1/2..., 1/2.../3
}

// Runs fn in a child process, which must exit 0 within the deadline.
// Assertions about the results are made by the caller on data the child
// wrote to a pipe; a hang fails the test instead of blocking it.
struct ChildScan {
  bool finished = false;
  bool scanned = false;
  ScanStatistics statistics;
  SessionCounts counts;
};

// The scan runs in a child (as nobody with unprivileged, see
// test::drop_to_nobody); the parent gives up on it after deadline.
ChildScan scan_in_child(const ScanOptions& options, std::int64_t now, std::chrono::seconds deadline,
                        bool unprivileged = false) {
  ChildScan result;
  int fds[2];
  if (::pipe(fds) != 0) return result;
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    if (unprivileged && !test::drop_to_nobody()) ::_exit(2);
    SessionScanner scanner(options);
    auto statistics = scanner.full_scan();
    ChildScan out;
    out.finished = true;
    out.scanned = statistics.has_value();
    if (statistics) out.statistics = *statistics;
    out.counts = scanner.counts(now);
    const bool wrote = ::write(fds[1], &out, sizeof out) == static_cast<ssize_t>(sizeof out);
    ::_exit(wrote ? 0 : 1);
  }
  ::close(fds[1]);
  if (child < 0) {
    ::close(fds[0]);
    return result;
  }
  const auto until = Clock::now() + deadline;
  pollfd pfd{fds[0], POLLIN, 0};
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) break;
    if (::poll(&pfd, 1, static_cast<int>(left)) > 0) {
      ChildScan received;
      if (::read(fds[0], &received, sizeof received) == static_cast<ssize_t>(sizeof received)) result = received;
      break;
    }
  }
  ::close(fds[0]);
  if (!result.finished) ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) result.finished = false;
  return result;
}

class HostileSessionDir : public ::testing::Test {
 protected:
  [[nodiscard]] ScanOptions options() const {
    ScanOptions result;
    result.session_dir = root_.path();
    result.max_depth = kHostileMaxDepth;
    result.max_read_bytes = kHostileReadCap;
    return result;
  }

  // After the scan: nothing outside was opened or read, and inside only the
  // regular session files were (their names), besides directories.
  void expect_only_regular_files_opened(OpenWatch& watch) {
    std::set<std::string> opened_files;
    for (const auto& where : watch.drain()) {
      EXPECT_NE(where.rfind(outside_.path(), 0), 0U) << "opened outside the session directory: " << where;
      if (where.rfind(root_.path() + "/", 0) == 0) {
        const std::string name = where.substr(root_.path().size() + 1);
        const struct stat info = test::stat_of(where);
        if (!S_ISDIR(info.st_mode)) opened_files.insert(name);
      }
    }
    EXPECT_EQ(opened_files, expected_.read_names);
  }

  void watch_everything(OpenWatch& watch) {
    watch.watch(root_.path());
    watch.watch(outside_.path());
    watch.watch(expected_.secret);
    watch.watch(expected_.outside_fifo);
    for (const auto& device : expected_.devices) watch.watch(root_ / device);
  }

  TempDir root_;
  TempDir outside_;
  Expected expected_;
  std::int64_t now_ = test::wall_now_s();
};

TEST_F(HostileSessionDir, ScannerCountsExactlyAndNeverFollowsBlocksOrOpensTheRest) {
  build_hostile_directory(root_.path(), outside_.path(), &expected_);
  OpenWatch watch;
  watch_everything(watch);

  const auto started = Clock::now();
  const ChildScan scan = scan_in_child(options(), now_, std::chrono::seconds(30));
  const auto elapsed = Clock::now() - started;
  ASSERT_TRUE(scan.finished) << "the scan hung or crashed";
  ASSERT_TRUE(scan.scanned);
  EXPECT_LT(elapsed, std::chrono::seconds(5)) << "a 1 GiB file must cost no more than its read cap";
  EXPECT_EQ(scan.counts, expected_.counts) << describe(scan.counts);
  EXPECT_EQ(scan.statistics.files_seen, expected_.counts.files_seen);
  EXPECT_EQ(scan.statistics.files_read, expected_.read_names.size() + 2) << "the top-level ones and two nested";
  EXPECT_EQ(scan.statistics.skipped, expected_.skipped);
  EXPECT_EQ(scan.statistics.unreadable, 0U);
  EXPECT_EQ(scan.statistics.directories, expected_.directories);
  expect_only_regular_files_opened(watch);
}

TEST_F(HostileSessionDir, IncrementalUpdatesRefuseTheSameEntries) {
  build_hostile_directory(root_.path(), outside_.path(), &expected_);
  OpenWatch watch;
  watch_everything(watch);
  Watchdog watchdog(std::chrono::seconds(30), "incremental updates on hostile entries");
  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  const SessionCounts before = scanner.counts(now_);
  for (const char* name : {"sess_secret", "sess_fifo_link", "sess_dangling", "sess_linked", "sess_alias", "sess_fifo",
                           "sess_socket", "sess_null", "sess_zero", "sess_loop", "sess_", "sess_missing",
                           "../sess_auth", "sess_x/../sess_auth"}) {
    scanner.file_changed("", name);
  }
  scanner.file_changed("linked", "sess_outside");
  scanner.file_changed("../" + outside_.path(), "sess_outside");
  EXPECT_EQ(scanner.counts(now_), before) << describe(scanner.counts(now_));
  EXPECT_EQ(before, expected_.counts) << describe(before);
  expect_only_regular_files_opened(watch);
}

TEST(HostileSessionDirIncremental, DirectoriesNeverLeaveTheSessionDirectory) {
  // session_dir is base/sessions; an authenticated session sits in base.
  TempDir base;
  test::make_directory(base / "sessions");
  test::make_directory(base / "sessions/a");
  test::write_file(base / "sess_escape", kAuthenticated);
  test::write_file(base / "sessions/a/sess_inside", kAuthenticated);
  ScanOptions scan_options;
  scan_options.session_dir = base / "sessions";
  SessionScanner scanner(scan_options);
  ASSERT_TRUE(scanner.full_scan().has_value());
  const std::int64_t now = test::wall_now_s();
  ASSERT_EQ(scanner.counts(now), active_counts({0, 0, 0, 1}));
  for (const char* directory : {"..", "a/..", "a/../..", "./..", "a//..", "/..", "../sessions/..", "."}) {
    scanner.file_changed(directory, "sess_escape");
    scanner.file_changed(directory, "sess_inside");
  }
  EXPECT_EQ(scanner.counts(now), active_counts({0, 0, 0, 1})) << describe(scanner.counts(now));
  // The regular path still works.
  test::write_file(base / "sessions/a/sess_second", kAuthenticated);
  scanner.file_changed("a", "sess_second");
  EXPECT_EQ(scanner.counts(now), active_counts({0, 0, 0, 2})) << describe(scanner.counts(now));
}

TEST_F(HostileSessionDir, TheRealHelperCountsExactlyAndOpensNothingElse) {
  build_hostile_directory(root_.path(), outside_.path(), &expected_);
  TempDir run;
  const std::string config = run / "coupecircuitd.conf";
  test::write_file(config, "[sessions]\ndir = " + root_.path() + "\nmax_depth = " + std::to_string(kHostileMaxDepth) +
                               "\nmax_read_bytes = " + std::to_string(kHostileReadCap) + "\n[snapshot]\npath = " + (run / "snapshot") + "\n[state]\npath = " + (run / "state") +
                               "\n");
  OpenWatch watch;
  watch_everything(watch);
  const test::ProcessResult once =
      test::run_process({COUPECIRCUITD_BINARY, "--once", "--config", config}, std::chrono::seconds(60));
  ASSERT_FALSE(once.timed_out) << "coupecircuitd hung\n" << once.describe();
  ASSERT_EQ(once.exit_code, 0) << once.describe();

  bool stale = false;
  auto copy = snapshot::read_snapshot_allow_stale((run / "snapshot").c_str(), {}, &stale);
  ASSERT_TRUE(copy.has_value()) << snapshot::to_string(copy.error());
  const auto& payload = copy->payload;
  SessionCounts published;
  for (std::size_t i = 0; i < 4; ++i) {
    published.active[i] = payload.count_active[i];
    published.inactive[i] = payload.count_inactive[i];
  }
  published.files_seen = payload.files_seen;
  EXPECT_EQ(published, expected_.counts) << describe(published);
  EXPECT_EQ(payload.sessions_active, expected_.counts.active[kAuthenticatedIndex]);
  EXPECT_EQ(payload.flags & snapshot::kFlagScanFailed, 0U);
  expect_only_regular_files_opened(watch);
}

TEST_F(HostileSessionDir, TheReadCapHoldsOnAGigabyteSparseFile) {
  // The marker sits right after the cap: one byte more read would find it.
  ScanOptions scan_options = options();
  scan_options.max_read_bytes = 4096;
  write_capped_big_file(root_ / "sess_big", scan_options.max_read_bytes);
  const auto started = Clock::now();
  const ChildScan scan = scan_in_child(scan_options, now_, std::chrono::seconds(30));
  ASSERT_TRUE(scan.finished);
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(5));
  EXPECT_EQ(scan.counts, active_counts({0, 0, 1, 0})) << describe(scan.counts);
  EXPECT_EQ(scan.statistics.files_read, 1U);
}

TEST_F(HostileSessionDir, UnreadableFilesAreUnknownAndCounted) {
  // As nobody: root reads any file whatever its mode (CAP_DAC_OVERRIDE).
  test::write_file(root_ / "sess_locked", kAuthenticated);
  ASSERT_EQ(::chmod((root_ / "sess_locked").c_str(), 0), 0);
  ASSERT_EQ(::chmod(root_.path().c_str(), 0755), 0);
  const ChildScan scan = scan_in_child(options(), now_, std::chrono::seconds(30), /*unprivileged=*/true);
  ASSERT_TRUE(scan.finished);
  EXPECT_EQ(scan.statistics.unreadable, 1U);
  EXPECT_EQ(scan.counts, active_counts({0, 0, 1, 0})) << describe(scan.counts);
}

TEST_F(HostileSessionDir, NameLimits) {
  // 255 bytes is the longest name; one more is refused by the kernel, so the
  // scanner never sees one.
  test::write_file(root_ / ("sess_" + std::string(250, 'n')), kAuthenticated);
  const std::string too_long = root_ / ("sess_" + std::string(251, 'n'));
  EXPECT_LT(::open(too_long.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600), 0);
  EXPECT_EQ(errno, ENAMETOOLONG);
  // Names with bytes that are not UTF-8, newlines and the like are names.
  test::write_file(root_ / std::string("sess_\xff\xfe\n\t|;\"'", 13), kAnonymous);
  const ChildScan scan = scan_in_child(options(), now_, std::chrono::seconds(30));
  ASSERT_TRUE(scan.finished);
  EXPECT_EQ(scan.counts, active_counts({0, 1, 0, 1})) << describe(scan.counts);
}

// ---- Files deleted and replaced while scans run

// A scratch directory in /dev/shm when it is a writable directory, else in
// the usual temporary directory; removed with its contents.
class ScratchDirectory {
 public:
  ScratchDirectory() {
    for (const std::string& base : std::vector<std::string>{"/dev/shm", std::filesystem::temp_directory_path().string()}) {
      std::string pattern = base + "/coupecircuit-scratch-XXXXXX";
      if (::mkdtemp(pattern.data()) != nullptr) {
        path_ = pattern;
        return;
      }
    }
  }
  ScratchDirectory(const ScratchDirectory&) = delete;
  ScratchDirectory& operator=(const ScratchDirectory&) = delete;
  ~ScratchDirectory() {
    std::error_code ignored;
    if (!path_.empty()) std::filesystem::remove_all(path_, ignored);
  }
  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};


TEST_F(HostileSessionDir, FilesDeletedOrReplacedDuringScans) {
  // In tmpfs when there is one: faster changes, more of them land mid-scan.
  ScratchDirectory scratch;
  ASSERT_FALSE(scratch.path().empty());
  const std::string root = scratch.path() + "/sessions";
  const std::string outside = scratch.path() + "/outside";
  test::make_directory(root);
  test::make_directory(outside);
  constexpr int kStable = 100;
  constexpr int kChurning = 50;
  for (int i = 0; i < kStable; ++i) test::write_file(root + "/sess_stable" + std::to_string(i), kAuthenticated);
  test::write_file(outside + "/shadow", kAuthenticated);
  OpenWatch watch;
  watch.watch(outside);
  watch.watch(outside + "/shadow");

  // Every regular file appears whole (written aside, renamed in), so every
  // counted file is authenticated; the other shapes are never counted.
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> changes{0};
  std::thread churn([&] {
    std::mt19937 random(7);
    const std::string aside = outside + "/aside";  // outside: never a session, never scanned
    while (!stop.load(std::memory_order_relaxed)) {
      const std::string name = root + "/sess_churn" + std::to_string(random() % kChurning);
      switch (random() % 6) {
        case 0:
        case 1: {  // replaced by a new regular file
          const int fd = ::open(aside.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
          if (fd < 0) break;
          const bool whole = ::write(fd, kAuthenticated.data(), kAuthenticated.size()) ==
                             static_cast<ssize_t>(kAuthenticated.size());
          ::close(fd);
          if (whole) ::rename(aside.c_str(), name.c_str());
          break;
        }
        case 2:
          ::unlink(name.c_str());
          break;
        case 3:
          ::unlink(name.c_str());
          ::mkfifo(name.c_str(), 0600);
          break;
        case 4:
          ::unlink(name.c_str());
          ::symlink((outside + "/shadow").c_str(), name.c_str());
          break;
        default:
          ::unlink(name.c_str());
          ::mkdir(name.c_str(), 0700);  // a directory with a session name
          ::rmdir(name.c_str());
          break;
      }
      changes.fetch_add(1, std::memory_order_relaxed);
    }
  });

  ScanOptions scan_options = options();
  scan_options.session_dir = root;
  SessionScanner scanner(scan_options);
  int scans = 0;
  constexpr std::uint64_t kWantedChanges = 5000;
  {
    Watchdog watchdog(std::chrono::seconds(90), "scans during churn");
    const auto started = Clock::now();
    // At least 2 s, 20 scans and kWantedChanges changes; at most 30 s.
    while (Clock::now() < started + std::chrono::seconds(30) &&
           (Clock::now() < started + std::chrono::seconds(2) || scans < 20 ||
            changes.load(std::memory_order_relaxed) < kWantedChanges)) {
      const auto statistics = scanner.full_scan();
      ASSERT_TRUE(statistics.has_value()) << statistics.error().message;
      ++scans;
      for (int i = 0; i < kChurning; i += 7) scanner.file_changed("", "sess_churn" + std::to_string(i));
      const SessionCounts counts = scanner.counts(now_ + 1);
      EXPECT_GE(counts.active[kAuthenticatedIndex], static_cast<std::uint64_t>(kStable)) << describe(counts);
      EXPECT_LE(counts.active[kAuthenticatedIndex], static_cast<std::uint64_t>(kStable + kChurning)) << describe(counts);
      EXPECT_EQ(counts.active[kEmptyIndex] + counts.active[kAnonymousIndex] + counts.active[kUnknownIndex], 0U)
          << describe(counts) << " (a file that vanished or changed type mid-scan is not a session)";
      EXPECT_EQ(counts.files_seen, counts.active[kAuthenticatedIndex]) << describe(counts);
    }
  }
  stop.store(true);
  churn.join();

  // Once still, the counts are exact.
  std::uint64_t regular = kStable;
  for (int i = 0; i < kChurning; ++i) {
    struct stat info {};
    if (::lstat((root + "/sess_churn" + std::to_string(i)).c_str(), &info) == 0 && S_ISREG(info.st_mode)) ++regular;
  }
  ASSERT_TRUE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(now_ + 1), active_counts({0, 0, 0, regular})) << describe(scanner.counts(now_ + 1));
  std::printf("[ hostile  ] %d scans during %llu renames, deletions and type changes\n", scans,
              static_cast<unsigned long long>(changes.load()));
  EXPECT_GE(changes.load(), kWantedChanges) << "the directory must really change under the scans";
  for (const auto& where : watch.drain()) {
    EXPECT_NE(where, outside + "/shadow") << "a symlink was followed";
  }
}

// ---- A very large directory

TEST_F(HostileSessionDir, AVeryLargeDirectoryIsCountedExactly) {
  const char* long_tests = std::getenv("COUPECIRCUIT_LONG_TESTS");
  const bool long_run = long_tests != nullptr && std::string_view(long_tests) == "1";
  const std::size_t entries = long_run ? 1'000'000 : 100'000;
  // Creating files costs far more than scanning them on a journaled file
  // system: build the directory in tmpfs when there is one.
  ScratchDirectory directory;
  const std::string& root = directory.path();
  ASSERT_FALSE(root.empty());

  // One file in 8 has content (authenticated, anonymous, unknown in turn):
  // the others are empty and cost no read.
  std::array<std::uint64_t, 4> active{};
  const auto created = Clock::now();
  char name[64];
  for (std::size_t i = 0; i < entries; ++i) {
    std::snprintf(name, sizeof name, "/sess_%026zu", i);
    const std::string path = root + name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
    std::string_view content;
    std::size_t index = kEmptyIndex;
    if (i % 8 == 0) {
      switch ((i / 8) % 3) {
        case 0: content = kAuthenticated; index = kAuthenticatedIndex; break;
        case 1: content = kAnonymous; index = kAnonymousIndex; break;
        default: content = kUnknown; index = kUnknownIndex; break;
      }
      ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
    }
    ::close(fd);
    ++active[index];
  }
  const double create_s = std::chrono::duration<double>(Clock::now() - created).count();

  ScanOptions scan_options = options();
  scan_options.session_dir = root;
  SessionScanner scanner(scan_options);
  const std::chrono::seconds deadline(long_run ? 600 : 60);
  Watchdog watchdog(deadline * 2 + std::chrono::seconds(10), "scan of a large directory");
  const auto started = Clock::now();
  const auto first = scanner.full_scan();
  const auto first_elapsed = Clock::now() - started;
  ASSERT_TRUE(first.has_value());
  EXPECT_LT(first_elapsed, deadline);
  EXPECT_EQ(first->files_seen, entries);
  EXPECT_EQ(first->files_read, (entries + 7) / 8);
  EXPECT_EQ(scanner.counts(now_ + 1), active_counts(active)) << describe(scanner.counts(now_ + 1));

  // Nothing changed: nothing is read again.
  const auto again_started = Clock::now();
  const auto again = scanner.full_scan();
  const auto again_elapsed = Clock::now() - again_started;
  ASSERT_TRUE(again.has_value());
  EXPECT_LT(again_elapsed, deadline);
  EXPECT_EQ(again->files_read, 0U);
  EXPECT_EQ(scanner.counts(now_ + 1), active_counts(active));
  std::printf("[ hostile  ] %zu entries in %s: created in %.1f s, first scan %.2f s, rescan %.2f s\n", entries,
              root.c_str(), create_s,
              std::chrono::duration<double>(first_elapsed).count(), std::chrono::duration<double>(again_elapsed).count());
}

}  // namespace
}  // namespace coupecircuit
