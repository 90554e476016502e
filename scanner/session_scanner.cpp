#include "session_scanner.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace coupecircuit {
namespace {

constexpr std::string_view kSessionPrefix = "sess_";
constexpr std::uint64_t kRootHash = 0xcbf29ce484222325ULL;

std::int64_t mtime_ns_of(const struct stat& info) noexcept {
  return static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000LL + info.st_mtim.tv_nsec;
}

bool is_session_name(std::string_view name) noexcept {
  return name.size() > kSessionPrefix.size() && name.substr(0, kSessionPrefix.size()) == kSessionPrefix;
}

std::int64_t floor_seconds(std::int64_t ns) noexcept {
  return ns >= 0 ? ns / 1'000'000'000LL : -((-ns + 999'999'999LL) / 1'000'000'000LL);
}

}  // namespace

std::uint64_t directory_hash(std::string_view directory) noexcept {
  return directory.empty() ? 0 : extend_path_hash(0, directory);
}

std::uint64_t extend_path_hash(std::uint64_t parent, std::string_view component) noexcept {
  std::uint64_t hash = parent == 0 ? kRootHash : parent;
  if (parent != 0) {
    hash ^= static_cast<unsigned char>('/');
    hash *= 0x100000001b3ULL;
  }
  for (const char c : component) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

SessionScanner::SessionScanner(ScanOptions options)
    : options_(std::move(options)), read_buffer_(options_.max_read_bytes + 1) {}

Result<ScanStatistics> SessionScanner::full_scan() {
  const auto started = std::chrono::steady_clock::now();
  ScanStatistics statistics;
  UniqueFd root(::open(options_.session_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  if (!root) {
    const int saved = errno;
    return make_error("cannot open session directory " + options_.session_dir + ": " + std::strerror(saved), saved);
  }
  ++epoch_;
  directories_.clear();
  walk(root.get(), "", 0, 0, statistics);

  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.epoch != epoch_) {
      account(it->second, -1);
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  statistics.duration_us = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count());
  return statistics;
}

void SessionScanner::walk(int directory_fd, const std::string& relative, std::uint64_t path_hash, unsigned depth,
                          ScanStatistics& statistics) {
  ++statistics.directories;
  directories_.push_back(relative);
  // fdopendir takes ownership of its descriptor: give it a duplicate.
  const int listing_fd = ::fcntl(directory_fd, F_DUPFD_CLOEXEC, 0);
  if (listing_fd < 0) return;
  DIR* listing = ::fdopendir(listing_fd);
  if (listing == nullptr) {
    ::close(listing_fd);
    return;
  }
  while (const dirent* item = ::readdir(listing)) {
    const std::string_view name(item->d_name);
    if (name == "." || name == "..") continue;
    unsigned char type = item->d_type;
    if (type == DT_UNKNOWN) {
      struct stat info {};
      if (::fstatat(directory_fd, item->d_name, &info, AT_SYMLINK_NOFOLLOW) != 0) continue;
      type = S_ISDIR(info.st_mode) ? DT_DIR : (S_ISREG(info.st_mode) ? DT_REG : DT_LNK);
    }
    if (type == DT_DIR) {
      if (depth >= options_.max_depth) continue;
      UniqueFd child(::openat(directory_fd, item->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child) continue;
      const std::string child_relative = relative.empty() ? std::string(name) : relative + "/" + std::string(name);
      walk(child.get(), child_relative, extend_path_hash(path_hash, name), depth + 1, statistics);
      continue;
    }
    if (!is_session_name(name)) continue;
    if (type != DT_REG) {
      ++statistics.skipped;
      continue;
    }
    examine(directory_fd, extend_path_hash(path_hash, name), item->d_name, statistics);
  }
  ::closedir(listing);
}

void SessionScanner::examine(int directory_fd, std::uint64_t key, const char* name, ScanStatistics& statistics) {
  struct stat info {};
  if (::fstatat(directory_fd, name, &info, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(info.st_mode)) {
    ++statistics.skipped;  // vanished, or not a regular file
    forget(key);
    return;
  }
  const std::int64_t mtime_ns = mtime_ns_of(info);
  auto known = entries_.find(key);
  if (known != entries_.end() && known->second.inode == info.st_ino && known->second.size == info.st_size &&
      known->second.mtime_ns == mtime_ns) {
    ++statistics.files_seen;
    known->second.epoch = epoch_;
    return;
  }
  SessionClass session_class = SessionClass::empty;
  if (info.st_size != 0) {
    bool vanished = false;
    session_class = read_and_classify(directory_fd, name, statistics, &vanished);
    if (vanished) {
      // Deleted, or replaced by something that is not a regular file, since
      // it was listed: not a session any more.
      ++statistics.skipped;
      forget(key);
      return;
    }
  }
  ++statistics.files_seen;
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& entry = it->second;
  if (!inserted) account(entry, -1);
  entry.inode = info.st_ino;
  entry.size = info.st_size;
  entry.mtime_ns = mtime_ns;
  entry.epoch = epoch_;
  entry.session_class = session_class;
  account(entry, +1);
}

SessionClass SessionScanner::read_and_classify(int directory_fd, const char* name, ScanStatistics& statistics,
                                               bool* vanished) {
  UniqueFd fd(::openat(directory_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
  if (!fd && (errno == ENOENT || errno == ELOOP || errno == ENXIO)) {
    *vanished = true;  // deleted, or now a symbolic link or a socket
    return SessionClass::unknown;
  }
  struct stat info {};
  if (fd && ::fstat(fd.get(), &info) == 0 && !S_ISREG(info.st_mode)) {
    *vanished = true;  // now a FIFO, a device or a directory
    return SessionClass::unknown;
  }
  if (!fd || !S_ISREG(info.st_mode)) {
    ++statistics.unreadable;
    return SessionClass::unknown;
  }
  ++statistics.files_read;
  // Read one byte past the cap to know whether the file was cut.
  const std::size_t wanted = options_.max_read_bytes + 1;
  std::size_t got = 0;
  while (got < wanted) {
    const ssize_t n = ::pread(fd.get(), read_buffer_.data() + got, wanted - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ++statistics.unreadable;
      return SessionClass::unknown;
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
    // Whole file read (its size is known from fstat): no read to find EOF.
    if (got >= static_cast<std::size_t>(info.st_size)) break;
  }
  if (got == 0) return SessionClass::empty;
  const bool truncated = got > options_.max_read_bytes;
  const std::size_t used = truncated ? options_.max_read_bytes : got;
  return classify_session(std::string_view(read_buffer_.data(), used), truncated, options_.rule);
}

void SessionScanner::account(const Entry& entry, int direction) {
  const auto index = static_cast<std::size_t>(entry.session_class);
  const std::int64_t second = floor_seconds(entry.mtime_ns);
  if (direction > 0) {
    ++totals_[index];
    ++by_mtime_second_[second][index];
    return;
  }
  --totals_[index];
  auto bucket = by_mtime_second_.find(second);
  if (bucket == by_mtime_second_.end()) return;
  --bucket->second[index];
  bool all_zero = true;
  for (const auto count : bucket->second) all_zero = all_zero && count == 0;
  if (all_zero) by_mtime_second_.erase(bucket);
}

void SessionScanner::forget(std::uint64_t key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  account(it->second, -1);
  entries_.erase(it);
}

UniqueFd SessionScanner::open_relative_directory(std::string_view directory) const {
  UniqueFd current(::open(options_.session_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
  while (current && !directory.empty()) {
    const auto slash = directory.find('/');
    const std::string component(directory.substr(0, slash));
    directory.remove_prefix(slash == std::string_view::npos ? directory.size() : slash + 1);
    // Only names a directory listing gives: never back up out of session_dir.
    if (component.empty() || component == "." || component == "..") return UniqueFd();
    current.reset(::openat(current.get(), component.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  }
  return current;
}

void SessionScanner::file_changed(std::string_view directory, std::string_view name) {
  if (!is_session_name(name) || name.find('/') != std::string_view::npos) return;
  const std::uint64_t key = extend_path_hash(directory_hash(directory), name);
  UniqueFd directory_fd = open_relative_directory(directory);
  if (!directory_fd) {
    forget(key);
    return;
  }
  ScanStatistics ignored;
  const std::string name_text(name);
  // The incremental path keeps the entry's epoch current so the next full
  // scan does not drop it before seeing it.
  examine(directory_fd.get(), key, name_text.c_str(), ignored);
}

void SessionScanner::file_removed(std::string_view directory, std::string_view name) {
  if (!is_session_name(name)) return;
  forget(extend_path_hash(directory_hash(directory), name));
}

SessionCounts SessionScanner::counts(std::int64_t now_wall_s) const {
  SessionCounts result;
  const std::int64_t cutoff = now_wall_s - static_cast<std::int64_t>(options_.active_minutes) * 60;
  for (auto it = by_mtime_second_.lower_bound(cutoff); it != by_mtime_second_.end(); ++it) {
    for (std::size_t i = 0; i < kSessionClassCount; ++i) result.active[i] += it->second[i];
  }
  for (std::size_t i = 0; i < kSessionClassCount; ++i) {
    result.inactive[i] = totals_[i] - result.active[i];
    result.files_seen += totals_[i];
  }
  return result;
}

}  // namespace coupecircuit
