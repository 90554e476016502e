// What mod_coupecircuit exports for one request, computed from the snapshot
// without httpd types.
//
// Fast path (the common case): one acquire load of the seqlock sequence, one
// load of the heartbeat, a vDSO clock read (no syscall), a few comparisons and
// fixed-size copies. The payload is copied into a per-thread view only when
// the sequence changed (about once a second). The file is re-opened (open,
// fstat, mmap: syscalls) at most once a second per process, and only while it
// is missing or stale.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "module_config.hpp"
#include "shared_state.hpp"
#include "snapshot.hpp"
#include "thresholds.hpp"

namespace coupecircuit::module {

enum class Health : std::uint8_t { fresh, stale, missing };

// Texts are NUL-terminated; has_* false means "do not export".
struct RequestValues {
  Verdict verdict = Verdict::inconnu;
  Health health = Health::missing;
  bool has_values = false;  // load, sessions and cut
  bool cut = false;
  bool has_seuil_sessions = false;
  bool has_seuil_load = false;
  bool has_age = false;
  bool tripped = false;        // the vhost's hysteresis state
  bool sessions_high = false;  // above its RELEASE: a reason to drain
  bool load_high = false;
  char load_avg[snapshot::kTextCapacity] = {};
  char sessions[snapshot::kTextCapacity] = {};
  char seuil_sessions[snapshot::kTextCapacity] = {};
  char seuil_load[snapshot::kTextCapacity] = {};
  char age[snapshot::kTextCapacity] = {};
};

// Health changes worth one log line per process.
enum class Transition : std::uint8_t { none, became_stale, became_missing, recovered };

class SnapshotSource {
 public:
  SnapshotSource() = default;
  SnapshotSource(const SnapshotSource&) = delete;
  SnapshotSource& operator=(const SnapshotSource&) = delete;

  // Sets the path and maps it when possible (child_init). Never throws.
  void open(const char* path) noexcept;
  // now_ns: CLOCK_MONOTONIC(_COARSE). *transition reports a health change that
  // this call was the first to see.
  // shared: the server's hysteresis state (null: plain comparisons).
  void compute(const ServerSettings& settings, std::uint64_t now_ns, RequestValues& out, Transition* transition,
               SharedState* shared = nullptr) noexcept;
  // The calling thread's last consistent copy (valid after a fresh compute).
  [[nodiscard]] static const snapshot::Payload& thread_payload() noexcept;

  [[nodiscard]] const char* path() const noexcept { return path_; }
  [[nodiscard]] snapshot::ReadError last_open_error() const noexcept { return last_error_.load(std::memory_order_relaxed); }

 private:
  bool reopen_if_due(std::uint64_t now_ns) noexcept;
  void abandon(const snapshot::SnapshotFile* file) noexcept;
  Transition note_health(Health health) noexcept;

  char path_[4096] = {};
  std::atomic<const snapshot::SnapshotFile*> current_{nullptr};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::uint64_t> next_reopen_ns_{0};
  std::atomic<int> health_{-1};
  std::atomic<snapshot::ReadError> last_error_{snapshot::ReadError::missing};
  std::mutex reopen_mutex_;
  snapshot::ReadOnlyMapping current_mapping_;  // guarded by reopen_mutex_
  std::vector<const snapshot::SnapshotFile*> retired_;
};

[[nodiscard]] std::uint64_t coarse_monotonic_now_ns() noexcept;

}  // namespace coupecircuit::module
