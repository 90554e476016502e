// Writer and reader of the snapshot described in snapshot_layout.hpp.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "result.hpp"
#include "snapshot_layout.hpp"
#include "unique_fd.hpp"

namespace coupecircuit::snapshot {

enum class ReadError : std::uint8_t {
  missing,      // no file, or not readable
  not_regular,  // the path is not a regular file
  bad_magic,
  bad_version,
  bad_size,     // header_size/total_size/file size differ from this build's layout
  torn,         // no consistent copy after the bounded retries (writer stuck mid-write)
  stale,        // heartbeat older than the allowed age
  untrusted,    // writable by others than its owner (group or world): mod_coupecircuit refuses it
};
[[nodiscard]] std::string_view to_string(ReadError error) noexcept;

[[nodiscard]] std::uint64_t monotonic_now_ns() noexcept;
[[nodiscard]] std::int64_t realtime_now_ns() noexcept;
// A random value identifying one writer's lifetime (Payload::writer_generation).
[[nodiscard]] std::uint64_t new_writer_generation();

// ---- Low-level reader operations on a mapping (used by the module's fast path).

// Checks magic, version and sizes. mapped_size is the size of the mapping.
[[nodiscard]] bool header_is_valid(const SnapshotFile& file, std::size_t mapped_size,
                                   ReadError* why = nullptr) noexcept;
[[nodiscard]] std::uint64_t load_sequence(const SnapshotFile& file) noexcept;
[[nodiscard]] std::uint64_t load_heartbeat_ns(const SnapshotFile& file) noexcept;
// Copies the payload consistently; false when every attempt saw a write in
// progress. On success *sequence_out is the even sequence the copy belongs to.
// The copy is made into `out` directly: after a failure `out` may hold a mix
// of two payloads and must not be used (copy into scratch space when the
// previous contents of `out` must survive a failed attempt).
// CopyExtent::used_overrides copies the vhost_override_count overrides in use
// only (most snapshots have none, and their table is nearly all of the
// payload): the rest of `out` is then left as it was, and readers must go no
// further than the count (mod_coupecircuit, once per thread and sequence).
enum class CopyExtent : std::uint8_t { whole, used_overrides };
[[nodiscard]] bool try_copy_payload(const SnapshotFile& file, Payload& out, std::uint64_t* sequence_out,
                                    unsigned max_attempts, CopyExtent extent = CopyExtent::whole) noexcept;

// A PROT_READ, MAP_SHARED mapping of a snapshot file.
class ReadOnlyMapping {
 public:
  ReadOnlyMapping() noexcept = default;
  ReadOnlyMapping(const ReadOnlyMapping&) = delete;
  ReadOnlyMapping& operator=(const ReadOnlyMapping&) = delete;
  ReadOnlyMapping(ReadOnlyMapping&& other) noexcept;
  ReadOnlyMapping& operator=(ReadOnlyMapping&& other) noexcept;
  ~ReadOnlyMapping();

  // Opens without following a final symlink and validates the header.
  [[nodiscard]] static Result<ReadOnlyMapping, ReadError> open(const char* path) noexcept;

  [[nodiscard]] const SnapshotFile* file() const noexcept { return file_; }
  [[nodiscard]] dev_t device() const noexcept { return device_; }
  [[nodiscard]] ino_t inode() const noexcept { return inode_; }
  // The file's mode bits and owner when it was opened.
  [[nodiscard]] mode_t mode() const noexcept { return mode_; }
  [[nodiscard]] uid_t owner() const noexcept { return owner_; }
  // Leaves the mapping in place for the life of the process (readers on other
  // threads may still be copying from it) and forgets it.
  const SnapshotFile* release() noexcept;

 private:
  const SnapshotFile* file_ = nullptr;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  mode_t mode_ = 0;
  uid_t owner_ = 0;
};

// ---- High-level reader API (coupecircuitctl, tests).

struct ReadOptions {
  unsigned max_attempts = 10000;
  std::uint64_t max_age_ns = 10ULL * 1000 * 1000 * 1000;
};

struct SnapshotCopy {
  Payload payload{};
  std::uint64_t sequence = 0;
  std::uint64_t heartbeat_ns = 0;
  std::uint64_t age_ns = 0;  // now - heartbeat, CLOCK_MONOTONIC
};

// A validated, consistent copy; stale beyond options.max_age_ns is an error.
[[nodiscard]] Result<SnapshotCopy, ReadError> read_snapshot(const char* path, const ReadOptions& options = {});
// Same, but a stale copy is still returned (stale reported through *stale).
[[nodiscard]] Result<SnapshotCopy, ReadError> read_snapshot_allow_stale(const char* path, const ReadOptions& options,
                                                                         bool* stale);

// ---- Writer (coupecircuitd only: one writer per file).

class SnapshotWriter {
 public:
  SnapshotWriter() noexcept = default;
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;
  SnapshotWriter(SnapshotWriter&& other) noexcept;
  SnapshotWriter& operator=(SnapshotWriter&& other) noexcept;
  ~SnapshotWriter();

  // Opens the file in place when its layout matches and it is this user's own
  // file that nobody else can write, else creates a new file renamed over the
  // path (replaced_because() says why). Creates the parent directory (0755)
  // when missing. The file is 0644.
  [[nodiscard]] static Result<SnapshotWriter> open(const std::string& path);

  // Publishes a whole payload under the seqlock and ticks the heartbeat.
  // Both do nothing (and needs_reopen() turns true) once the file was
  // truncated under the mapping, where a store would raise SIGBUS.
  void publish(const Payload& payload) noexcept;
  // Liveness only: readers do not retry.
  void heartbeat() noexcept;
  // Zeroes the heartbeat of this (deleted or replaced) file before the writer
  // moves to a new one: readers see it stale at once and re-open the path,
  // instead of waiting for their maximum age.
  void mark_superseded() noexcept;

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  // Why the file found at the path was replaced instead of reused (empty when
  // there was none, or it was reused).
  [[nodiscard]] const std::string& replaced_because() const noexcept { return replaced_because_; }
  [[nodiscard]] bool is_valid() const noexcept { return file_ != nullptr; }
  // The file at path is no longer the one mapped (deleted or replaced), or its
  // header was damaged: the caller should re-open.
  [[nodiscard]] bool needs_reopen() const noexcept;

 private:
  [[nodiscard]] bool mapping_is_backed() const noexcept;

  SnapshotFile* file_ = nullptr;
  std::string path_;
  dev_t device_ = 0;
  ino_t inode_ = 0;
  UniqueFd fd_;  // to check the file's size before touching the mapping
  std::string replaced_because_;
};

// Are the session counts of this payload known? False when the last scan
// could not read the session directory, or the Redis store is unavailable.
// The one test every reader uses (module, status page, Prometheus, health,
// agent, coupecircuitctl): when false, SESSIONS_ACTIVES is absent, not 0, and
// the sessions threshold neither trips nor releases anything.
[[nodiscard]] constexpr bool sessions_known(const Payload& payload) noexcept {
  return (payload.flags & (kFlagScanFailed | kFlagSessionsUnavailable)) == 0;
}

// Copies a C string into a fixed char array, always NUL-terminated.
template <std::size_t N>
void copy_text(char (&destination)[N], std::string_view text) noexcept {
  const std::size_t length = text.size() < N - 1 ? text.size() : N - 1;
  for (std::size_t i = 0; i < length; ++i) destination[i] = text[i];
  for (std::size_t i = length; i < N; ++i) destination[i] = '\0';
}

}  // namespace coupecircuit::snapshot
