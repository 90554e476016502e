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
// max_read_bytes are read per file, through a window of read_chunk_bytes;
// contents are read again only when (inode, size, mtime) changed.
//
// Cost: a file already inactive when first seen is only stat'ed, never read
// (it cannot count as active again without a write, which changes its
// mtime); its class is counted as "unread" (unless classify_inactive). A full scan stats and reads with
// scan_threads threads, in batches per directory, so a cold page cache is
// read with several requests in flight; the tables are updated by the
// calling thread only.
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <absl/container/flat_hash_map.h>

#include "result.hpp"
#include "session_classifier.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {

struct ScanOptions {
  std::string session_dir = "/var/lib/php/sessions";
  unsigned max_depth = 3;  // levels of sub-directories entered below session_dir
  // Bytes of one file examined at most, read in chunks of read_chunk_bytes
  // (the memory used per scan thread): past the first chunk only when a
  // parser skips a long value by its length prefix, or looks further.
  std::size_t max_read_bytes = std::size_t{1} << 20;
  std::size_t read_chunk_bytes = std::size_t{64} << 10;
  [[nodiscard]] std::size_t window_bytes() const noexcept { return std::min(read_chunk_bytes, max_read_bytes); }
  std::uint32_t active_minutes = 24;
  unsigned scan_threads = 4;  // threads of a full scan (1: the calling thread only)
  // Also read files already inactive when first seen, for complete inactive
  // counts per class (slower first scan); otherwise they count as "unread".
  bool classify_inactive = false;
  ClassifierRule rule;
};

struct SessionCounts {
  std::array<std::uint64_t, kSessionClassCount> active{};
  std::array<std::uint64_t, kSessionClassCount> inactive{};
  std::uint64_t inactive_unread = 0;  // non-empty files inactive when first seen: never read
  std::uint64_t files_seen = 0;
  [[nodiscard]] std::uint64_t active_authenticated() const noexcept {
    return active[static_cast<std::size_t>(SessionClass::authenticated)];
  }
  bool operator==(const SessionCounts&) const = default;
};

struct ScanStatistics {
  std::uint64_t files_seen = 0;      // sess_* regular files
  std::uint64_t files_read = 0;      // contents (re)read in this scan
  std::uint64_t files_deferred = 0;  // inactive when seen: stat'ed, not read
  std::uint64_t skipped = 0;         // sess_* entries that are not regular files, or vanished
  std::uint64_t unreadable = 0;      // open or read failed
  std::uint64_t directories = 0;
  std::uint64_t duration_us = 0;
};

// After a complete pass: forgets every entry of `entries` (a map of structs
// with an `epoch` member) that the pass did not mark with its `epoch`,
// calling forget(entry) first so that it leaves the counts.
template <typename Map, typename Epoch, typename Forget>
void erase_unseen(Map& entries, Epoch epoch, Forget forget) {
  for (auto it = entries.begin(); it != entries.end();) {
    if (it->second.epoch != epoch) {
      forget(it->second);
      entries.erase(it++);  // absl::flat_hash_map::erase(iterator) returns nothing
    } else {
      ++it;
    }
  }
}

class SessionScanner {
 public:
  explicit SessionScanner(ScanOptions options);

  // Walks the whole tree; entries not seen any more are dropped. An error
  // only when session_dir itself cannot be opened.
  [[nodiscard]] Result<ScanStatistics> full_scan();

  // New options (a reload). The table is kept when files are found, read
  // and classified the same way (only active_minutes or scan_threads
  // changed): the next full scan is then a rescan, not a first scan.
  // Returns whether it was kept.
  bool reconfigure(ScanOptions options);

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
  // Class slots of the tables: the four session classes, then "unread".
  static constexpr std::size_t kUnreadSlot = kSessionClassCount;
  static constexpr std::size_t kSlotCount = kSessionClassCount + 1;
  using SlotCounts = std::array<std::uint64_t, kSlotCount>;

  // 16 bytes (24 with its key): a million files fit in about 50 MB of table.
  // Only used to notice a change, together with the mtime in nanoseconds:
  // the low 32 bits of the inode and the size clamped to 24 bits do that.
  static constexpr std::uint32_t kSizeLimit = (1U << 24) - 1;
  static constexpr std::uint32_t kEpochMask = (1U << 5) - 1;
  struct Entry {
    std::int64_t mtime_ns = 0;
    std::uint32_t inode_low = 0;
    std::uint32_t size : 24 = 0;
    std::uint32_t slot : 3 = 0;   // SessionClass, or kUnreadSlot
    std::uint32_t epoch : 5 = 0;  // only compared for equality with epoch_: wrapping is harmless
  };
  static_assert(sizeof(Entry) == 16);

  // What the tables knew of a name when it was queued. Examining needs it
  // to skip unchanged files and must not read the tables, which the calling
  // thread updates meanwhile.
  struct Known {
    bool present = false;
    std::uint8_t slot = 0;
    std::uint32_t inode_low = 0;
    std::int64_t mtime_ns = 0;
    std::uint32_t size = 0;
  };

  // What examining one name found.
  struct Examined {
    enum class Outcome : std::uint8_t { gone, unchanged, fresh };
    Outcome outcome = Outcome::gone;
    bool read = false;
    bool deferred = false;
    bool unreadable = false;
    std::uint8_t slot = 0;
    std::uint32_t inode_low = 0;
    std::int64_t mtime_ns = 0;
    std::uint32_t size = 0;  // clamped like Entry::size
  };

  // Names of one directory waiting to be examined.
  struct Batch {
    int directory_fd = -1;
    std::int64_t unread_before_s = 0;
    std::vector<std::uint64_t> keys;
    std::vector<Known> known;
    std::vector<std::uint32_t> name_offsets;  // into names, NUL-terminated
    std::vector<char> names;
    std::vector<Examined> results;
    void clear() noexcept {
      keys.clear();
      known.clear();
      name_offsets.clear();
      names.clear();
    }
    [[nodiscard]] std::size_t size() const noexcept { return keys.size(); }
  };
  class ScanWorkers;

  void walk(int directory_fd, const std::string& relative, std::uint64_t path_hash, unsigned depth,
            std::int64_t unread_before_s, ScanStatistics& statistics, ScanWorkers& workers);
  void queue_file(ScanWorkers& workers, int directory_fd, std::int64_t unread_before_s, std::uint64_t key,
                  std::string_view name);
  [[nodiscard]] Known known(std::uint64_t key) const;
  // Reads the file system only: safe on any thread.
  void examine(int directory_fd, const char* name, const Known& known, std::int64_t unread_before_s,
               std::vector<char>& buffer, Examined& out) const;
  void apply(std::uint64_t key, const Examined& examined, ScanStatistics& statistics);
  // *vanished: the name is no longer a regular file (deleted or replaced
  // since it was listed); the result is then meaningless.
  SessionClass read_and_classify(int directory_fd, const char* name, std::vector<char>& buffer, bool* vanished,
                                 Examined* out) const;
  void account(const Entry& entry, int direction);
  void forget(std::uint64_t key);
  [[nodiscard]] UniqueFd open_relative_directory(std::string_view directory) const;
  [[nodiscard]] std::int64_t unread_before_s() const;

  ScanOptions options_;
  absl::flat_hash_map<std::uint64_t, Entry> entries_;  // key: hash of the path relative to session_dir
  std::map<std::int64_t, SlotCounts> by_mtime_second_;
  SlotCounts totals_{};
  std::vector<std::string> directories_;
  std::vector<char> read_buffer_;  // the calling thread's
  std::uint32_t epoch_ = 0;        // within kEpochMask
};

// Hash of a path relative to the session directory, built one component at a
// time: path_hash(path_hash(0, "a"), "sess_x") == hash of "a/sess_x".
// 0 stands for session_dir itself.
[[nodiscard]] std::uint64_t extend_path_hash(std::uint64_t parent, std::string_view component) noexcept;
[[nodiscard]] std::uint64_t directory_hash(std::string_view directory) noexcept;

}  // namespace coupecircuit
