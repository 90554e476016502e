// Scans a PHP session directory (files handler, including the "N;" layout of
// N levels of sub-directories) and keeps, per session file, its class and
// modification time, so that counts of active sessions per class can be
// produced at any time without re-reading anything.
//
// Safety: only regular files named sess_* are read; every open uses
// O_NOFOLLOW|O_NONBLOCK and the type is checked again on the descriptor, so a
// symlink is never followed and a FIFO never blocks; sub-directories are
// entered with O_NOFOLLOW|O_DIRECTORY relative to their parent; no flock is
// ever taken (PHP holds an exclusive lock during a request); at most
// max_read_bytes are read per file; contents are read again only when
// (inode, size, mtime) changed.
#pragma once

#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "result.hpp"
#include "session_classifier.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {

struct ScanOptions {
  std::string session_dir = "/var/lib/php/sessions";
  unsigned max_depth = 3;  // levels of sub-directories entered below session_dir
  std::size_t max_read_bytes = 64 * 1024;
  std::uint32_t active_minutes = 24;
  ClassifierRule rule;
};

struct SessionCounts {
  std::array<std::uint64_t, kSessionClassCount> active{};
  std::array<std::uint64_t, kSessionClassCount> inactive{};
  std::uint64_t files_seen = 0;
  [[nodiscard]] std::uint64_t active_authenticated() const noexcept {
    return active[static_cast<std::size_t>(SessionClass::authenticated)];
  }
  bool operator==(const SessionCounts&) const = default;
};

struct ScanStatistics {
  std::uint64_t files_seen = 0;     // sess_* regular files
  std::uint64_t files_read = 0;     // contents (re)read in this scan
  std::uint64_t skipped = 0;        // sess_* entries that are not regular files, or vanished
  std::uint64_t unreadable = 0;     // open or read failed
  std::uint64_t directories = 0;
  std::uint64_t duration_us = 0;
};

class SessionScanner {
 public:
  explicit SessionScanner(ScanOptions options);

  // Walks the whole tree; entries not seen any more are dropped. An error
  // only when session_dir itself cannot be opened.
  [[nodiscard]] Result<ScanStatistics> full_scan();

  // Incremental updates from inotify: directory is relative to session_dir
  // ("" for the top), name a file name in it. A directory with an empty,
  // "." or ".." component matches nothing.
  void file_changed(std::string_view directory, std::string_view name);
  void file_removed(std::string_view directory, std::string_view name);

  // Counts by class, split active (mtime within active_minutes of now) and
  // inactive. O(distinct mtimes within the window), not O(files).
  [[nodiscard]] SessionCounts counts(std::int64_t now_wall_s) const;

  // Directories (relative to session_dir, "" for the top) seen by the last
  // full scan, for inotify watches.
  [[nodiscard]] const std::vector<std::string>& directories() const noexcept { return directories_; }
  [[nodiscard]] const ScanOptions& options() const noexcept { return options_; }
  [[nodiscard]] std::size_t tracked_files() const noexcept { return entries_.size(); }

 private:
  struct Entry {
    std::uint64_t inode = 0;
    std::int64_t mtime_ns = 0;
    std::int64_t size = 0;
    std::uint32_t epoch = 0;
    SessionClass session_class = SessionClass::empty;
  };

  void walk(int directory_fd, const std::string& relative, std::uint64_t path_hash, unsigned depth,
            ScanStatistics& statistics);
  void examine(int directory_fd, std::uint64_t key, const char* name, ScanStatistics& statistics);
  // *vanished: the name is no longer a regular file (deleted or replaced
  // since it was listed); the result is then meaningless.
  SessionClass read_and_classify(int directory_fd, const char* name, ScanStatistics& statistics, bool* vanished);
  void account(const Entry& entry, int direction);
  void forget(std::uint64_t key);
  [[nodiscard]] UniqueFd open_relative_directory(std::string_view directory) const;

  ScanOptions options_;
  std::unordered_map<std::uint64_t, Entry> entries_;  // key: hash of the path relative to session_dir
  std::map<std::int64_t, std::array<std::uint64_t, kSessionClassCount>> by_mtime_second_;
  std::array<std::uint64_t, kSessionClassCount> totals_{};
  std::vector<std::string> directories_;
  std::vector<char> read_buffer_;
  std::uint32_t epoch_ = 0;
};

// Hash of a path relative to the session directory, built one component at a
// time: path_hash(path_hash(0, "a"), "sess_x") == hash of "a/sess_x".
// 0 stands for session_dir itself.
[[nodiscard]] std::uint64_t extend_path_hash(std::uint64_t parent, std::string_view component) noexcept;
[[nodiscard]] std::uint64_t directory_hash(std::string_view directory) noexcept;

}  // namespace coupecircuit
