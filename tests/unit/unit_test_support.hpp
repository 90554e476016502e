// Helpers shared by the unit tests: a self-removing temporary directory and
// small file utilities that fail the current test on error.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace coupecircuit::test {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coupecircuit-unit-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed: " << std::strerror(errno);
    }
    path_ = pattern;
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ignored;
    // remove_all does not follow symbolic links.
    std::filesystem::remove_all(path_, ignored);
  }

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, std::string_view content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0) << "cannot create " << path << ": " << std::strerror(errno);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t wrote = ::write(fd, content.data() + done, content.size() - done);
    if (wrote < 0 && errno == EINTR) continue;
    ASSERT_GT(wrote, 0) << "cannot write " << path << ": " << std::strerror(errno);
    done += static_cast<std::size_t>(wrote);
  }
  ::close(fd);
}

inline std::string read_file(const std::string& path) {
  std::string text;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(fd, 0) << "cannot open " << path << ": " << std::strerror(errno);
  if (fd < 0) return text;
  char buffer[4096];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fd);
  return text;
}

inline void make_directory(const std::string& path, mode_t mode = 0755) {
  ASSERT_EQ(::mkdir(path.c_str(), mode), 0) << "cannot create " << path << ": " << std::strerror(errno);
}

// The real binaries, for the tests that run them (defined for the unit test
// binary by tests/stress/CMakeLists.txt).
inline constexpr const char* kDaemon = COUPECIRCUITD_BINARY;
inline constexpr const char* kCtl = COUPECIRCUITCTL_BINARY;

// A coupecircuitd configuration that keeps the helper's files inside dir:
// sessions in dir/sessions, the snapshot in dir/run/snapshot, the state in
// dir/control/state. extra is appended; it may open a section again.
inline std::string helper_config_text(const TempDir& dir, std::string_view extra = "") {
  return "[sessions]\ndir = " + (dir / "sessions") + "\n[snapshot]\npath = " + (dir / "run/snapshot") +
         "\n[state]\npath = " + (dir / "control/state") + "\n" + std::string(extra);
}

// Sets both access and modification times to wall_seconds (+ nanoseconds).
inline void set_mtime(const std::string& path, std::int64_t wall_seconds, long nanoseconds = 0) {
  timespec times[2];
  times[0].tv_sec = static_cast<time_t>(wall_seconds);
  times[0].tv_nsec = nanoseconds;
  times[1] = times[0];
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW), 0)
      << "cannot set times of " << path << ": " << std::strerror(errno);
}

inline struct stat stat_of(const std::string& path) {
  struct stat info {};
  EXPECT_EQ(::lstat(path.c_str(), &info), 0) << "cannot stat " << path << ": " << std::strerror(errno);
  return info;
}

inline std::vector<std::string> list_directory(const std::string& path) {
  std::vector<std::string> names;
  for (const auto& item : std::filesystem::directory_iterator(path)) names.push_back(item.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

inline std::int64_t wall_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Restores the process umask when it goes out of scope.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t mask) : previous_(::umask(mask)) {}
  ScopedUmask(const ScopedUmask&) = delete;
  ScopedUmask& operator=(const ScopedUmask&) = delete;
  ~ScopedUmask() { ::umask(previous_); }

 private:
  mode_t previous_;
};

// Root reads any file whatever its mode (CAP_DAC_OVERRIDE), and CI runs the
// tests as root: a test about an unreadable file runs its checks in a child
// that becomes nobody first. Every ancestor of the files must be searchable
// by others (chmod the TempDir 0755).
inline constexpr uid_t kNobodyId = 65534;

inline bool drop_to_nobody() noexcept {
  if (::geteuid() != 0) return true;
  return ::setgroups(0, nullptr) == 0 && ::setresgid(kNobodyId, kNobodyId, kNobodyId) == 0 &&
         ::setresuid(kNobodyId, kNobodyId, kNobodyId) == 0;
}

// Runs body() in a forked child, as nobody when the test runs as root;
// body returns an empty string when its checks held, else what failed.
// Returns that text, or why the child could not run it.
template <typename Body>
std::string run_unprivileged(Body&& body) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::string("pipe: ") + std::strerror(errno);
  std::fflush(nullptr);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    const std::string failure = drop_to_nobody() ? std::string(body()) : std::string("cannot become nobody");
    const bool wrote = failure.empty() || ::write(fds[1], failure.data(), failure.size()) > 0;
    ::_exit(failure.empty() && wrote ? 0 : 1);
  }
  ::close(fds[1]);
  if (child < 0) {
    ::close(fds[0]);
    return std::string("fork: ") + std::strerror(errno);
  }
  std::string failure;
  char buffer[512];
  for (;;) {
    const ssize_t got = ::read(fds[0], buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    failure.append(buffer, static_cast<std::size_t>(got));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (failure.empty() && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) failure = "the child failed";
  return failure;
}

}  // namespace coupecircuit::test
