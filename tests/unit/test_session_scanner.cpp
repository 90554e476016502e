// Unit tests of scanner/session_scanner.cpp against session directories
// built in a temporary directory: counts per class, PHP's sub-directory
// layout, hostile entries, rescans, the incremental API and ageing.
#include "session_scanner.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "session_test_support.hpp"
#include "unit_test_support.hpp"

namespace coupecircuit {
namespace {

using test::describe;
using test::kAnonymous;
using test::kAuthenticated;
using test::kUnknown;
using test::make_counts;
using test::TempDir;
using Clock = std::chrono::steady_clock;

// An anonymous php-format session of exactly `size` bytes.
std::string anonymous_of_size(std::size_t size) {
  for (const std::string_view key : {"pad", "pa", "p"}) {
    for (std::size_t n = 0; n < size; ++n) {
      std::string text =
          std::string(kAnonymous) + std::string(key) + "|s:" + std::to_string(n) + ":\"" + std::string(n, 'x') + "\";";
      if (text.size() == size) return text;
      if (text.size() > size) break;
    }
  }
  ADD_FAILURE() << "cannot build an anonymous session of " << size << " bytes";
  return {};
}

class SessionScannerTest : public ::testing::Test {
 protected:
  [[nodiscard]] ScanOptions options(unsigned max_depth = 2) const {
    ScanOptions result;
    result.session_dir = dir_.path();
    result.max_depth = max_depth;
    result.active_minutes = 24;
    return result;
  }

  // Creates session_dir/relative with content and mtime now - age_s.
  void add(const std::string& relative, std::string_view content, std::int64_t age_s = 60) {
    const std::string path = dir_ / relative;
    for (std::size_t slash = relative.find('/'); slash != std::string::npos; slash = relative.find('/', slash + 1)) {
      ::mkdir((dir_ / relative.substr(0, slash)).c_str(), 0733);
    }
    test::write_file(path, content);
    test::set_mtime(path, now_ - age_s);
  }

  struct SessionFile {
    std::string relative;
    std::string_view content;
    std::int64_t age_s = 60;
  };
  void add(std::initializer_list<SessionFile> files) {
    for (const auto& file : files) add(file.relative, file.content, file.age_s);
  }

  void touch(const std::string& relative, std::int64_t age_s) { test::set_mtime(dir_ / relative, now_ - age_s); }

  [[nodiscard]] SessionCounts fresh_counts(unsigned max_depth = 2) const {
    SessionScanner scanner(options(max_depth));
    const auto scanned = scanner.full_scan();
    EXPECT_TRUE(scanned.has_value()) << scanned.error().message;
    return scanner.counts(now_);
  }

  // A full scan that must succeed; its statistics (all zero after a
  // recorded failure, so that the checks that follow fail too).
  static ScanStatistics scanned(SessionScanner& scanner) {
    const auto result = scanner.full_scan();
    EXPECT_TRUE(result.has_value()) << result.error().message;
    return result.has_value() ? *result : ScanStatistics{};
  }

  TempDir dir_;
  std::int64_t now_ = test::wall_now_s();
};

TEST(SessionScannerFixtures, SampleContentsClassifyAsExpected) {
  const ClassifierRule rule;
  EXPECT_EQ(classify_session(kAuthenticated, false, rule), SessionClass::authenticated);
  EXPECT_EQ(classify_session(kAnonymous, false, rule), SessionClass::anonymous);
  EXPECT_EQ(classify_session(kUnknown, false, rule), SessionClass::unknown);
  EXPECT_EQ(classify_session("", false, rule), SessionClass::empty);
  const std::string padded = anonymous_of_size(kAuthenticated.size());
  EXPECT_EQ(padded.size(), kAuthenticated.size());
  EXPECT_EQ(classify_session(padded, false, rule), SessionClass::anonymous);
}

TEST(SessionScannerHashes, PathHashIsBuiltOneComponentAtATime) {
  EXPECT_EQ(directory_hash(""), 0U);
  EXPECT_EQ(directory_hash("a"), extend_path_hash(0, "a"));
  EXPECT_EQ(directory_hash("a/b"), extend_path_hash(extend_path_hash(0, "a"), "b"));
  EXPECT_EQ(extend_path_hash(directory_hash("a/b"), "sess_x"),
            extend_path_hash(extend_path_hash(extend_path_hash(0, "a"), "b"), "sess_x"));
  EXPECT_EQ(extend_path_hash(0, "a/b/sess_x"), extend_path_hash(directory_hash("a/b"), "sess_x"));
  EXPECT_NE(extend_path_hash(0, "sess_x"), extend_path_hash(directory_hash("a"), "sess_x"));
  EXPECT_NE(extend_path_hash(0, "ab"), extend_path_hash(directory_hash("a"), "b"));
}

TEST_F(SessionScannerTest, CountsEachClassActiveAndInactive) {
  add({SessionFile{"sess_auth1", kAuthenticated, 60}, SessionFile{"sess_auth2", kAuthenticated, 10},
       SessionFile{"sess_auth_old", kAuthenticated, 3600}, SessionFile{"sess_anon", kAnonymous, 60},
       SessionFile{"sess_unknown", kUnknown, 600}, SessionFile{"sess_empty", "", 60},
       SessionFile{"sess_empty_old", "", 7200}});
  // Not session files: ignored whatever their content.
  add({SessionFile{"sess_", kAuthenticated}, SessionFile{"foo", kAuthenticated},
       SessionFile{"Sess_upper", kAuthenticated}, SessionFile{"xsess_a", kAuthenticated},
       SessionFile{".sess_hidden", kAuthenticated}});

  SessionScanner scanner(options());
  const ScanStatistics statistics = scanned(scanner);
  EXPECT_EQ(statistics.files_seen, 7U);
  EXPECT_EQ(statistics.files_read, 4U) << "empty files and files already inactive are not opened";
  EXPECT_EQ(statistics.files_deferred, 1U) << "sess_auth_old";
  EXPECT_EQ(statistics.skipped, 0U);
  EXPECT_EQ(statistics.unreadable, 0U);
  EXPECT_EQ(statistics.directories, 1U);
  EXPECT_EQ(scanner.tracked_files(), 7U);
  EXPECT_EQ(scanner.directories(), std::vector<std::string>{""});

  const SessionCounts counts = scanner.counts(now_);
  EXPECT_EQ(counts, make_counts({1, 1, 1, 2}, {1, 0, 0, 0}, 1)) << describe(counts);
  EXPECT_EQ(counts.active_authenticated(), 2U);

  // classify_inactive reads the old one too: same active counts, inactive
  // ones by class.
  ScanOptions every_file = options();
  every_file.classify_inactive = true;
  SessionScanner complete(every_file);
  const ScanStatistics complete_statistics = scanned(complete);
  EXPECT_EQ(complete_statistics.files_read, 5U);
  EXPECT_EQ(complete_statistics.files_deferred, 0U);
  EXPECT_EQ(complete.counts(now_), make_counts({1, 1, 1, 2}, {1, 0, 0, 1})) << describe(complete.counts(now_));
}

TEST_F(SessionScannerTest, AnEmptyDirectoryCountsNothing) {
  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(now_), SessionCounts{});
  EXPECT_EQ(scanner.tracked_files(), 0U);
}

TEST_F(SessionScannerTest, MissingSessionDirectoryIsAnError) {
  const auto scan_of = [&](const char* relative) {
    ScanOptions elsewhere = options();
    elsewhere.session_dir = dir_ / relative;
    SessionScanner scanner(elsewhere);
    return scanner.full_scan();
  };
  const auto missing = scan_of("nope");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ENOENT);
  EXPECT_NE(missing.error().message.find(dir_ / "nope"), std::string::npos) << missing.error().message;

  add("file", "x");
  const auto not_directory = scan_of("file");
  ASSERT_FALSE(not_directory.has_value());
  EXPECT_EQ(not_directory.error().code, ENOTDIR);
}

TEST_F(SessionScannerTest, AFailedScanKeepsThePreviousCounts) {
  add("sess_1", kAuthenticated);
  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  ASSERT_EQ(::rename(dir_.path().c_str(), (dir_.path() + ".moved").c_str()), 0);
  EXPECT_FALSE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(now_).active_authenticated(), 1U);
  ASSERT_EQ(::rename((dir_.path() + ".moved").c_str(), dir_.path().c_str()), 0);
}

TEST_F(SessionScannerTest, SubDirectoriesUpToMaxDepth) {
  add({SessionFile{"sess_top", kAnonymous}, SessionFile{"a/sess_1", kAuthenticated},
       SessionFile{"a/b/sess_2", kAuthenticated}, SessionFile{"a/b/c/sess_3", kAuthenticated},
       SessionFile{"0/f/sess_4", kUnknown}});
  add("sess_dir/sess_in", kAuthenticated);  // a directory named like a session

  {
    SessionScanner scanner(options(2));
    const ScanStatistics statistics = scanned(scanner);
    const SessionCounts counts = scanner.counts(now_);
    EXPECT_EQ(counts, make_counts({0, 1, 1, 3}, {0, 0, 0, 0})) << describe(counts);
    std::vector<std::string> directories = scanner.directories();
    std::sort(directories.begin(), directories.end());
    EXPECT_EQ(directories, (std::vector<std::string>{"", "0", "0/f", "a", "a/b", "sess_dir"}));
    EXPECT_EQ(statistics.directories, 6U);
    EXPECT_EQ(statistics.skipped, 0U) << "a directory named sess_* is walked, not skipped";
  }
  {
    SessionScanner scanner(options(0));
    ASSERT_TRUE(scanner.full_scan().has_value());
    EXPECT_EQ(scanner.counts(now_), make_counts({0, 1, 0, 0}, {0, 0, 0, 0})) << describe(scanner.counts(now_));
    EXPECT_EQ(scanner.directories(), std::vector<std::string>{""});
  }
  {
    SessionScanner scanner(options(1));
    ASSERT_TRUE(scanner.full_scan().has_value());
    EXPECT_EQ(scanner.counts(now_), make_counts({0, 1, 0, 2}, {0, 0, 0, 0})) << describe(scanner.counts(now_));
  }
  {
    SessionScanner scanner(options(3));
    ASSERT_TRUE(scanner.full_scan().has_value());
    EXPECT_EQ(scanner.counts(now_), make_counts({0, 1, 1, 4}, {0, 0, 0, 0})) << describe(scanner.counts(now_));
  }
}

TEST_F(SessionScannerTest, HostileEntriesAreNeitherFollowedNorBlocking) {
  TempDir outside;
  test::write_file(outside / "passwd", kAuthenticated);  // would count if followed
  test::write_file(outside / "sess_outside", kAuthenticated);

  add("sess_link", "");
  ASSERT_EQ(::unlink((dir_ / "sess_link").c_str()), 0);
  ASSERT_EQ(::symlink((outside / "passwd").c_str(), (dir_ / "sess_link").c_str()), 0);
  ASSERT_EQ(::symlink(outside.path().c_str(), (dir_ / "linkdir").c_str()), 0);
  ASSERT_EQ(::symlink(outside.path().c_str(), (dir_ / "sess_linkdir").c_str()), 0);
  ASSERT_EQ(::symlink((dir_ / "nowhere").c_str(), (dir_ / "sess_dangling").c_str()), 0);

  // A FIFO with authenticated data waiting in it: reading it would change
  // the counts, opening it for reading without a writer would block.
  ASSERT_EQ(::mkfifo((dir_ / "sess_fifo").c_str(), 0600), 0);
  const int fifo_fd = ::open((dir_ / "sess_fifo").c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  ASSERT_GE(fifo_fd, 0);
  ASSERT_EQ(::write(fifo_fd, kAuthenticated.data(), kAuthenticated.size()),
            static_cast<ssize_t>(kAuthenticated.size()));

  const int socket_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(socket_fd, 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string socket_path = dir_ / "sess_sock";
  ASSERT_LT(socket_path.size(), sizeof address.sun_path);
  std::memcpy(address.sun_path, socket_path.c_str(), socket_path.size() + 1);
  ASSERT_EQ(::bind(socket_fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0) << std::strerror(errno);

  // 1 GiB, sparse, starting with an authenticated session.
  add("sess_big", kAuthenticated);
  ASSERT_EQ(::truncate((dir_ / "sess_big").c_str(), 1LL << 30), 0);
  touch("sess_big", 60);

  add("sess_junk", std::string_view("\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe|\x01\x02", 21));
  const std::string long_name = "sess_" + std::string(250, 'x');
  ASSERT_EQ(long_name.size(), 255U);
  add(long_name, kAnonymous);

  SessionScanner scanner(options());
  const auto started = Clock::now();
  const auto statistics = scanner.full_scan();
  const auto elapsed = Clock::now() - started;
  ASSERT_TRUE(statistics.has_value()) << statistics.error().message;
  EXPECT_LT(elapsed, std::chrono::seconds(2));

  const SessionCounts counts = scanner.counts(now_);
  EXPECT_EQ(counts, make_counts({0, 1, 1, 1}, {0, 0, 0, 0})) << describe(counts);
  EXPECT_EQ(statistics->files_seen, 3U);
  EXPECT_EQ(statistics->files_read, 3U);
  EXPECT_EQ(statistics->skipped, 5U) << "sess_link, sess_linkdir, sess_dangling, sess_fifo, sess_sock";
  EXPECT_EQ(statistics->directories, 1U) << "linkdir is not entered";

  // The FIFO still holds its data: nobody read it.
  char buffer[256];
  EXPECT_EQ(::read(fifo_fd, buffer, sizeof buffer), static_cast<ssize_t>(kAuthenticated.size()));
  ::close(fifo_fd);
  ::close(socket_fd);

  // The incremental path refuses them too.
  for (const char* name : {"sess_link", "sess_linkdir", "sess_dangling", "sess_fifo", "sess_sock"}) {
    scanner.file_changed("", name);
  }
  scanner.file_changed("linkdir", "sess_outside");
  EXPECT_EQ(scanner.counts(now_), counts) << describe(scanner.counts(now_));
}

TEST_F(SessionScannerTest, AFifoWithoutAWriterNeverBlocks) {
  add("sess_ok", kAuthenticated);
  ASSERT_EQ(::mkfifo((dir_ / "sess_fifo").c_str(), 0600), 0);
  const ScanOptions scan_options = options();
  const std::int64_t now = now_;
  std::fflush(nullptr);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    SessionScanner scanner(scan_options);
    if (!scanner.full_scan()) ::_exit(2);
    scanner.file_changed("", "sess_fifo");
    const SessionCounts counts = scanner.counts(now);
    ::_exit(counts.files_seen == 1 && counts.active_authenticated() == 1 ? 0 : 3);
  }
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(child, &status, WNOHANG)) == 0 && Clock::now() < deadline) {
    ::usleep(1000);  // polling interval, bounded by the deadline
  }
  if (done == 0) {
    ::kill(child, SIGKILL);
    ::waitpid(child, &status, 0);
    FAIL() << "the scan blocked on a FIFO";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(SessionScannerTest, AnUnreadableFileIsUnknownAndCounted) {
  add("sess_locked", kAuthenticated);
  ASSERT_EQ(::chmod((dir_ / "sess_locked").c_str(), 0), 0);
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  const std::string failure = test::run_unprivileged([&]() -> std::string {
    SessionScanner scanner(options());
    const auto statistics = scanner.full_scan();
    if (!statistics) return "the scan failed: " + statistics.error().message;
    if (statistics->unreadable != 1U) return "unreadable = " + std::to_string(statistics->unreadable);
    const auto counts = scanner.counts(now_);
    if (!(counts == make_counts({0, 0, 1, 0}, {0, 0, 0, 0}))) return "counts: " + describe(counts);
    return {};
  });
  EXPECT_EQ(failure, "");
}

TEST_F(SessionScannerTest, ReadsAtMostMaxReadBytes) {
  const std::string padding = "pad|s:70000:\"" + std::string(70000, 'x') + "\";";
  const std::string marker = R"(vzn|a:1:{s:7:"storage";s:1:"x";})";
  add("sess_marker_late", std::string(kAnonymous) + padding + marker);
  add("sess_marker_early", std::string(kAnonymous) + marker + padding);

  ScanOptions capped = options();
  capped.max_read_bytes = 64 * 1024;
  SessionScanner scanner(capped);
  ASSERT_TRUE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 0, 1, 1}, {0, 0, 0, 0}))
      << "a marker past the cap is not seen: " << describe(scanner.counts(now_));

  ScanOptions larger = options();
  larger.max_read_bytes = 128 * 1024;
  SessionScanner wide(larger);
  ASSERT_TRUE(wide.full_scan().has_value());
  EXPECT_EQ(wide.counts(now_), make_counts({0, 0, 0, 2}, {0, 0, 0, 0})) << describe(wide.counts(now_));

  // Exactly at the cap: not truncated.
  const std::string exact = std::string(kAnonymous) + marker;
  ScanOptions tight = options();
  tight.max_read_bytes = exact.size();
  add("sess_marker_late", exact);
  ASSERT_NO_FATAL_FAILURE(test::write_file(dir_ / "sess_marker_early", std::string(kAnonymous)));
  SessionScanner tight_scanner(tight);
  ASSERT_TRUE(tight_scanner.full_scan().has_value());
  EXPECT_EQ(tight_scanner.counts(now_), make_counts({0, 1, 0, 1}, {0, 0, 0, 0}))
      << describe(tight_scanner.counts(now_));
}

TEST_F(SessionScannerTest, RescanFollowsChanges) {
  add({SessionFile{"sess_a", kAnonymous, 60}, SessionFile{"sess_b", kAuthenticated, 60},
       SessionFile{"sess_c", kAuthenticated, 3600}, SessionFile{"sess_d", kUnknown, 60},
       SessionFile{"x/sess_e", kAuthenticated, 60}});

  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 1, 1, 2}, {0, 0, 0, 0}, 1)) << describe(scanner.counts(now_));

  add("sess_a", kAuthenticated, 30);                                            // content changes class
  test::write_file(dir_ / "sess_b", anonymous_of_size(kAuthenticated.size()));  // same size, new mtime
  touch("sess_b", 20);
  touch("sess_c", 5);                                 // active again
  ASSERT_EQ(::unlink((dir_ / "sess_d").c_str()), 0);  // dropped
  add("sess_f", kAnonymous, 1);                       // added
  ASSERT_EQ(::unlink((dir_ / "x/sess_e").c_str()), 0);
  ASSERT_EQ(::rmdir((dir_ / "x").c_str()), 0);  // a whole directory goes

  EXPECT_EQ(scanned(scanner).files_read, 4U) << "sess_a, sess_b, sess_c, sess_f";
  EXPECT_EQ(scanner.tracked_files(), 4U);
  const SessionCounts counts = scanner.counts(now_);
  EXPECT_EQ(counts, make_counts({0, 2, 0, 2}, {0, 0, 0, 0})) << describe(counts);
  EXPECT_EQ(counts, fresh_counts());
}

TEST_F(SessionScannerTest, AFileInactiveWhenFirstSeenIsReadOnceAWriteMakesItActive) {
  add("sess_old", kAuthenticated, 3600);
  add("sess_old_too", kAuthenticated, 3600);
  SessionScanner scanner(options());
  const ScanStatistics first = scanned(scanner);
  EXPECT_EQ(first.files_read, 0U);
  EXPECT_EQ(first.files_deferred, 2U);
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 0, 0, 0}, {0, 0, 0, 0}, 2)) << describe(scanner.counts(now_));

  // Unchanged and still inactive: neither read nor counted as deferred again.
  const ScanStatistics again = scanned(scanner);
  EXPECT_EQ(again.files_read, 0U);
  EXPECT_EQ(again.files_deferred, 0U);

  // PHP writes one (new mtime): the full scan reads it...
  touch("sess_old", 5);
  EXPECT_EQ(scanned(scanner).files_read, 1U);
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 0, 0, 1}, {0, 0, 0, 0}, 1)) << describe(scanner.counts(now_));
  // ...and so does the inotify path.
  touch("sess_old_too", 1);
  scanner.file_changed("", "sess_old_too");
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 0, 0, 2}, {0, 0, 0, 0}, 0)) << describe(scanner.counts(now_));
  // Read while active, then ageing out: the class stays known.
  EXPECT_EQ(scanner.counts(now_ + 3600), make_counts({0, 0, 0, 0}, {0, 0, 0, 2}, 0));
}

TEST_F(SessionScannerTest, AReloadKeepsTheTableUnlessFilesAreClassifiedDifferently) {
  add("sess_recent", kAuthenticated, 5 * 60);
  add("sess_old", kAuthenticated, 40 * 60);
  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 0, 0, 1}, {0, 0, 0, 0}, 1));

  // Another activity window, kept classes (reconfigure is true), then a rescan.
  const auto rescan_with_window = [&](unsigned active_minutes) {
    ScanOptions window = options();
    window.active_minutes = active_minutes;
    EXPECT_TRUE(scanner.reconfigure(window));
    return scanned(scanner).files_read;
  };

  // A shorter window: nothing to read again, the class is kept.
  EXPECT_EQ(rescan_with_window(1), 0U);
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 0, 0, 0}, {0, 0, 0, 1}, 1));

  // A longer window covering the unread file: the rescan reads it.
  EXPECT_EQ(rescan_with_window(60), 1U);
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 0, 0, 2}, {0, 0, 0, 0}, 0));
  ScanOptions longer = options();
  longer.active_minutes = 60;

  // Another rule: every file is read again under it.
  ScanOptions symfony = longer;
  symfony.rule = *parse_authenticated_rule("_sf2_attributes contains _security_main");
  EXPECT_FALSE(scanner.reconfigure(symfony));
  EXPECT_EQ(scanner.counts(now_), SessionCounts{});
  EXPECT_EQ(scanned(scanner).files_read, 2U);
  EXPECT_EQ(scanner.counts(now_).active_authenticated(), 0U);
}

TEST_F(SessionScannerTest, ThreadedScanCountsExactlyLikeASingleThread) {
  // Enough names for several batches per directory, in sub-directories too,
  // with every class, both activities, and entries that are not sessions.
  constexpr int kFiles = 3000;
  for (int i = 0; i < kFiles; ++i) {
    const std::string directory = i % 3 == 0 ? "" : (i % 3 == 1 ? "a/" : "a/b/");
    const std::string_view content = i % 4 == 0   ? std::string_view(kAuthenticated)
                                     : i % 4 == 1 ? std::string_view(kAnonymous)
                                     : i % 4 == 2 ? std::string_view(kUnknown)
                                                  : std::string_view();
    add(directory + "sess_" + std::to_string(i), content, (i % 7) * 500);
  }
  ASSERT_EQ(::symlink("sess_0", (dir_ / "sess_link").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir_ / "a/sess_fifo").c_str(), 0600), 0);

  for (const bool classify_inactive : {false, true}) {
    ScanOptions single = options();
    single.scan_threads = 1;
    single.classify_inactive = classify_inactive;
    ScanOptions threaded = single;
    threaded.scan_threads = 4;
    SessionScanner one(single);
    SessionScanner four(threaded);
    const auto one_statistics = one.full_scan();
    const auto four_statistics = four.full_scan();
    ASSERT_TRUE(one_statistics.has_value());
    ASSERT_TRUE(four_statistics.has_value());
    EXPECT_EQ(four.counts(now_), one.counts(now_))
        << describe(four.counts(now_)) << " / " << describe(one.counts(now_));
    EXPECT_EQ(four.counts(now_).files_seen, static_cast<std::uint64_t>(kFiles));
    EXPECT_EQ(four_statistics->files_read, one_statistics->files_read);
    EXPECT_EQ(four_statistics->files_deferred, one_statistics->files_deferred);
    EXPECT_EQ(four_statistics->skipped, 2U) << "the symbolic link and the FIFO";
    EXPECT_EQ(four.directories(), one.directories());
    // Ages 0..3000 s in steps of 500: 0, 500 and 1000 are active.
    std::uint64_t expected_active_authenticated = 0;
    for (int i = 0; i < kFiles; i += 4) expected_active_authenticated += (i % 7) * 500 < 24 * 60 ? 1 : 0;
    EXPECT_EQ(four.counts(now_).active_authenticated(), expected_active_authenticated);

    // A rescan after changes: the same again.
    touch("a/b/sess_2", classify_inactive ? 2 : 1);  // a new mtime in each round
    ASSERT_EQ(::unlink((dir_ / "sess_3").c_str()), 0);
    add("a/sess_new", kAuthenticated, 2);
    ASSERT_TRUE(one.full_scan().has_value());
    const ScanStatistics rescan = scanned(four);
    EXPECT_EQ(four.counts(now_), one.counts(now_));
    EXPECT_EQ(rescan.files_read, 2U) << "a/b/sess_2 and a/sess_new";
    ASSERT_EQ(::unlink((dir_ / "a/sess_new").c_str()), 0);
    test::write_file(dir_ / "sess_3", "");
  }
}

TEST_F(SessionScannerTest, ContentIsReadAgainOnlyWhenInodeSizeOrMtimeChange) {
  add({SessionFile{"sess_a", kAuthenticated, 60}, SessionFile{"sess_b", kAnonymous, 60},
       SessionFile{"sub/sess_c", kUnknown, 60}});
  SessionScanner scanner(options());
  EXPECT_EQ(scanned(scanner).files_read, 3U);

  const ScanStatistics unchanged = scanned(scanner);
  EXPECT_EQ(unchanged.files_read, 0U);
  EXPECT_EQ(unchanged.files_seen, 3U);

  // Same content, new mtime: read again.
  touch("sess_a", 30);
  EXPECT_EQ(scanned(scanner).files_read, 1U);

  // Nanoseconds count too.
  test::set_mtime(dir_ / "sess_a", now_ - 30, 5);
  EXPECT_EQ(scanner.full_scan()->files_read, 1U);

  // Same size and mtime but a new inode (rename over): read again.
  const std::string replacement = dir_ / "new";
  test::write_file(replacement, anonymous_of_size(kAuthenticated.size()));
  test::set_mtime(replacement, now_ - 30, 5);
  ASSERT_EQ(::rename(replacement.c_str(), (dir_ / "sess_a").c_str()), 0);
  EXPECT_EQ(scanned(scanner).files_read, 1U);
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 2, 1, 0}, {0, 0, 0, 0})) << describe(scanner.counts(now_));

  EXPECT_EQ(scanner.full_scan()->files_read, 0U);
}

TEST_F(SessionScannerTest, IncrementalUpdatesMatchAFullScan) {
  add({SessionFile{"sess_a", kAnonymous, 60}, SessionFile{"sess_b", kAuthenticated, 60},
       SessionFile{"sess_c", kAuthenticated, 3600}, SessionFile{"sess_d", kUnknown, 60},
       SessionFile{"a/b/sess_e", kAuthenticated, 60}, SessionFile{"a/b/sess_f", kAnonymous, 60},
       SessionFile{"a/sess_g", "", 60}});

  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  ASSERT_EQ(scanner.counts(now_), fresh_counts());

  add("sess_a", kAuthenticated, 30);
  scanner.file_changed("", "sess_a");
  touch("sess_c", 5);
  scanner.file_changed("", "sess_c");
  ASSERT_EQ(::unlink((dir_ / "sess_d").c_str()), 0);
  scanner.file_removed("", "sess_d");
  add("sess_new", kUnknown, 1);
  scanner.file_changed("", "sess_new");
  add("a/b/sess_e", kAnonymous, 2);
  scanner.file_changed("a/b", "sess_e");
  ASSERT_EQ(::unlink((dir_ / "a/b/sess_f").c_str()), 0);
  scanner.file_changed("a/b", "sess_f");  // a change event for a file that is gone
  add("a/b/sess_h", kAuthenticated, 3);
  scanner.file_changed("a/b", "sess_h");
  add("a/sess_g", kAuthenticated, 4);
  scanner.file_changed("a", "sess_g");

  // Ignored: not session names, or names with a slash.
  add("not_a_session", kAuthenticated);
  scanner.file_changed("", "not_a_session");
  scanner.file_changed("", "a/b/sess_h");
  scanner.file_removed("", "not_a_session");

  const SessionCounts incremental = scanner.counts(now_);
  const SessionCounts full = fresh_counts();
  EXPECT_EQ(incremental, full) << "incremental " << describe(incremental) << " vs full " << describe(full);
  EXPECT_EQ(full, make_counts({0, 1, 1, 5}, {0, 0, 0, 0})) << describe(full);
  EXPECT_EQ(scanner.tracked_files(), 7U);

  // The incremental path left every entry current: nothing to read again.
  EXPECT_EQ(scanned(scanner).files_read, 0U);
  EXPECT_EQ(scanner.counts(now_), full);
}

TEST_F(SessionScannerTest, FileRemovedForgetsOnlyThatPath) {
  add("sess_x", kAuthenticated);
  add("a/sess_x", kAuthenticated);
  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  ASSERT_EQ(scanner.counts(now_).active_authenticated(), 2U);
  scanner.file_removed("a", "sess_x");  // the file is still there: the next event or scan restores it
  EXPECT_EQ(scanner.counts(now_).active_authenticated(), 1U);
  scanner.file_removed("a", "sess_x");
  scanner.file_removed("missing", "sess_y");
  EXPECT_EQ(scanner.counts(now_).active_authenticated(), 1U);
  scanner.file_changed("a", "sess_x");
  EXPECT_EQ(scanner.counts(now_).active_authenticated(), 2U);
}

TEST_F(SessionScannerTest, FileChangedInAMissingOrSymlinkedDirectoryCountsNothing) {
  TempDir outside;
  test::write_file(outside / "sess_o", kAuthenticated);
  ASSERT_EQ(::symlink(outside.path().c_str(), (dir_ / "linkdir").c_str()), 0);
  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  scanner.file_changed("linkdir", "sess_o");
  scanner.file_changed("nope", "sess_o");
  scanner.file_changed("nope/deeper", "sess_o");
  EXPECT_EQ(scanner.counts(now_), SessionCounts{});
  EXPECT_EQ(scanner.tracked_files(), 0U);
}

TEST_F(SessionScannerTest, AFileReplacedByAFifoIsDropped) {
  add("sess_x", kAuthenticated);
  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  ASSERT_EQ(scanner.counts(now_).active_authenticated(), 1U);
  ASSERT_EQ(::unlink((dir_ / "sess_x").c_str()), 0);
  ASSERT_EQ(::mkfifo((dir_ / "sess_x").c_str(), 0600), 0);
  scanner.file_changed("", "sess_x");
  EXPECT_EQ(scanner.counts(now_), SessionCounts{});
  ASSERT_TRUE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(now_), SessionCounts{});
}

TEST_F(SessionScannerTest, CountsAgeWithTheActiveWindow) {
  constexpr std::int64_t kNow = 1'700'000'000;
  ScanOptions one_minute = options();
  one_minute.active_minutes = 1;
  one_minute.classify_inactive = true;  // every file is old for the real clock
  test::write_file(dir_ / "sess_59", kAuthenticated);
  test::set_mtime(dir_ / "sess_59", kNow - 59);
  test::write_file(dir_ / "sess_60", kAuthenticated);
  test::set_mtime(dir_ / "sess_60", kNow - 60);
  test::write_file(dir_ / "sess_61", kAuthenticated);
  test::set_mtime(dir_ / "sess_61", kNow - 61);
  test::write_file(dir_ / "sess_60_5", kAnonymous);
  test::set_mtime(dir_ / "sess_60_5", kNow - 61, 500'000'000);  // 60.5 s old
  test::write_file(dir_ / "sess_future", kUnknown);
  test::set_mtime(dir_ / "sess_future", kNow + 30);
  test::write_file(dir_ / "sess_1969", kAnonymous);
  test::set_mtime(dir_ / "sess_1969", -2, 500'000'000);  // 1.5 s before the epoch

  SessionScanner scanner(one_minute);
  ASSERT_TRUE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(kNow), make_counts({0, 0, 1, 2}, {0, 2, 0, 1})) << describe(scanner.counts(kNow));
  EXPECT_EQ(scanner.counts(kNow + 3600), make_counts({0, 0, 0, 0}, {0, 2, 1, 3}))
      << describe(scanner.counts(kNow + 3600));
  EXPECT_EQ(scanner.counts(kNow - 3600), make_counts({0, 1, 1, 3}, {0, 1, 0, 0}))
      << describe(scanner.counts(kNow - 3600));
  EXPECT_EQ(scanner.counts(0), make_counts({0, 2, 1, 3}, {0, 0, 0, 0})) << describe(scanner.counts(0));
}

TEST_F(SessionScannerTest, DefaultActiveWindowIs24Minutes) {
  add("sess_in", kAuthenticated, 24 * 60);
  add("sess_out", kAuthenticated, 24 * 60 + 1);
  ScanOptions defaults;
  defaults.session_dir = dir_.path();
  EXPECT_EQ(defaults.active_minutes, 24U);
  SessionScanner scanner(defaults);
  ASSERT_TRUE(scanner.full_scan().has_value());
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 0, 0, 1}, {0, 0, 0, 0}, 1)) << describe(scanner.counts(now_));
}

TEST_F(SessionScannerTest, ManyFilesSharingSecondsAreCountedExactly) {
  constexpr int kFiles = 500;
  for (int i = 0; i < kFiles; ++i) {
    add("sess_" + std::to_string(i), i % 2 == 0 ? kAuthenticated : kAnonymous, (i % 10) * 200);
  }
  SessionScanner scanner(options());
  ASSERT_TRUE(scanner.full_scan().has_value());
  // Ages 0..1800 s in steps of 200: 0..1400 are within 24 minutes (8 of 10).
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 200, 0, 200}, {0, 0, 0, 0}, 100)) << describe(scanner.counts(now_));
  for (int i = 0; i < kFiles; i += 2) {
    ASSERT_EQ(::unlink((dir_ / ("sess_" + std::to_string(i))).c_str()), 0);
    scanner.file_removed("", "sess_" + std::to_string(i));
  }
  EXPECT_EQ(scanner.counts(now_), make_counts({0, 200, 0, 0}, {0, 0, 0, 0}, 50)) << describe(scanner.counts(now_));
  EXPECT_EQ(scanner.counts(now_), fresh_counts());
}

}  // namespace
}  // namespace coupecircuit
