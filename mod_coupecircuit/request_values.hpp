// What mod_coupecircuit exports for one request, computed from the snapshot
// without httpd types.
//
// Fast path (the common case, compute_fresh): one acquire load of the seqlock
// sequence, one load of the heartbeat, one of the vhost's hysteresis state, a
// vDSO clock read (no syscall) and a few comparisons, which find that the
// thread's last answer for the vhost still holds. The payload is copied into
// a per-thread view, and what a vhost exports is worked out from it, only
// when the sequence changed (about once a second); the age and the verdict
// only when a second of age has passed or the hysteresis state moved. The
// file is re-opened (open, fstat, mmap: syscalls) at most once a second per
// process, and only while it is missing or stale.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>
#include <vector>

#include "exported_variables.hpp"
#include "module_config.hpp"
#include "shared_state.hpp"
#include "snapshot.hpp"
#include "thresholds.hpp"

namespace coupecircuit::module {

enum class Health : std::uint8_t { fresh, stale, missing };

// What one request exports and what its enforcement and health check need.
struct RequestValues {
  Verdict verdict = Verdict::inconnu;
  Health health = Health::missing;
  bool cut = false;
  bool tripped = false;        // the vhost's hysteresis state
  bool sessions_high = false;  // above its RELEASE: a reason to drain
  bool load_high = false;
  bool sessions_known = true;  // false: the helper could not count the sessions
  std::uint16_t present = 0;   // bit_of(row) of each variable exported
  char text[kVariableCount][snapshot::kTextCapacity] = {};  // NUL-terminated
  // A text that lives as long as the process (or the configuration), used
  // instead of text[row] when set: it may be longer (COUPECIRCUIT_INDISPONIBLE).
  const char* lasting[kVariableCount] = {};
  ProbeTail tail;  // SATURATION_<NAME>

  [[nodiscard]] bool has(Variable variable) const noexcept {
    return (present & bit_of(static_cast<std::size_t>(variable))) != 0;
  }
  [[nodiscard]] const char* text_of_row(std::size_t row) const noexcept {
    return lasting[row] != nullptr ? lasting[row] : text[row];
  }
  // Null when not exported.
  [[nodiscard]] const char* get(Variable variable) const noexcept {
    return has(variable) ? text_of_row(static_cast<std::size_t>(variable)) : nullptr;
  }
};

// A vhost's effective thresholds in a payload, with their RELEASE points.
struct VhostLimits {
  EffectiveThresholds effective;  // pointers into the payload or the settings
  std::uint64_t sessions_release = 0;
  std::uint64_t load_release_centi = 0;
};
[[nodiscard]] VhostLimits vhost_limits(const snapshot::Payload& payload, const ServerSettings& settings) noexcept;

// Why a vhost trips, for SharedState::update(): the values above RELEASE.
[[nodiscard]] constexpr std::uint64_t trip_reasons(bool sessions_high, bool load_high,
                                                  bool saturation_high = false) noexcept {
  return (sessions_high ? kTripReasonSessions : 0) | (load_high ? kTripReasonLoad : 0) |
         (saturation_high ? kTripReasonSaturation : 0);
}

// What a request's enforcement and health check need, in seven bits: the
// verdict (bits 0-1), cut, tripped, sessions_high, load_high, sessions unknown.
inline constexpr unsigned kStateCodes = 128;
[[nodiscard]] constexpr unsigned state_code(Verdict verdict, bool cut, bool tripped, bool sessions_high, bool load_high,
                                            bool sessions_known) noexcept {
  return static_cast<unsigned>(verdict) | (cut ? 4U : 0U) | (tripped ? 8U : 0U) | (sessions_high ? 16U : 0U) |
         (load_high ? 32U : 0U) | (sessions_known ? 0U : 64U);
}
[[nodiscard]] constexpr unsigned state_code(const RequestValues& values) noexcept {
  return state_code(values.verdict, values.cut, values.tripped, values.sessions_high, values.load_high,
                    values.sessions_known);
}
// RequestValues without the texts, from a state code.
[[nodiscard]] constexpr RequestValues values_of_state(unsigned code) noexcept {
  RequestValues values;
  values.verdict = static_cast<Verdict>(code & 3U);
  values.cut = (code & 4U) != 0;
  values.tripped = (code & 8U) != 0;
  values.sessions_high = (code & 16U) != 0;
  values.load_high = (code & 32U) != 0;
  values.sessions_known = (code & 64U) == 0;
  return values;
}

struct FreshValues;

// One request's values while the snapshot is fresh.
struct FreshRequest {
  FreshValues* values = nullptr;  // the calling thread's
  std::uint64_t age_seconds = 0;
  const char* age_text = nullptr;  // in static storage; null for a very large age
  // What the request exports, in one number: the values' revision, the age
  // and the verdict. Equal stamps, equal exports; kNoStamp matches none.
  std::uint64_t stamp = 0;
  unsigned state = 0;  // state_code()
  bool tripped = false;
  Verdict verdict = Verdict::inconnu;
};
inline constexpr std::uint64_t kNoStamp = ~std::uint64_t{0};

// What one vhost exports while the snapshot is fresh, worked out once per
// thread and snapshot sequence and reused by every request until the helper
// publishes again. Only the verdict (hysteresis) and the age change between
// those requests. The caller keeps one per thread and vhost (see
// ServerSettings::cache_slot), beside what it makes of them.
struct FreshValues {
  // Identity: which vhost, mapping and sequence these values were made from.
  const ServerSettings* settings = nullptr;
  std::uint64_t generation = 0;
  std::uint64_t sequence = 0;
  std::uint64_t revision = 0;  // new each time this thread works the values out again (from 1)
  bool cut = false;
  bool over = false;  // inputs of the hysteresis
  bool under = true;
  bool sessions_high = false;
  bool load_high = false;
  bool saturation_high = false;
  bool sessions_known = true;
  // The variables that do not change with each request (all but the
  // verdict and the age): which are exported, and their texts, each
  // NUL-terminated, back to back, that a request copies in one piece (the
  // thread's copy changes later).
  std::uint16_t present = 0;
  std::uint8_t offsets[kVariableCount] = {};
  std::uint8_t texts_size = 0;
  char texts[kVariableCount * snapshot::kTextCapacity] = {};
  // The same texts where one lives as long as the configuration: a static
  // rendering of the same number, or the directive's own text in the
  // settings. A request may point at these instead of copying. Null: none.
  const char* lasting[kVariableCount] = {};
  bool all_lasting = false;
  ProbeTail tail;  // SATURATION_<NAME>, set after the table's variables
  std::uint8_t state_flags = 0;  // state_code() of cut, sessions_high, load_high, sessions_known

  // The last answer (compute_fresh()), which holds for the next requests as
  // long as the mapping, its sequence and heartbeat and the vhost's
  // hysteresis state stay as they were, until the clock reaches `until_ns`
  // (the next whole second of age, or staleness).
  FreshRequest last;
  const snapshot::SnapshotFile* last_file = nullptr;
  std::uint64_t last_heartbeat = 0;
  std::uint64_t last_state_word = 0;
  std::uint64_t until_ns = 0;  // 0: the last answer holds for no other request

  [[nodiscard]] const char* text(std::size_t row) const noexcept { return texts + offsets[row]; }
};

// How many FreshValues a thread keeps, by vhost (ServerSettings::cache_slot):
// vhosts in different slots do not evict each other.
inline constexpr std::size_t kFreshSlots = 8;

// A word of a mapped snapshot, as snapshot::load_sequence() and
// load_heartbeat_ns() read it, inline: it runs on every request.
[[nodiscard]] inline std::uint64_t load_mapped_word(const std::uint64_t& word, std::memory_order order) noexcept {
  return std::atomic_ref<std::uint64_t>(const_cast<std::uint64_t&>(word)).load(order);  // NOLINT
}

// Health changes worth one log line per process.
enum class Transition : std::uint8_t { none, became_stale, became_missing, recovered };

class SnapshotSource {
 public:
  SnapshotSource() = default;
  ~SnapshotSource();
  SnapshotSource(const SnapshotSource&) = delete;
  SnapshotSource& operator=(const SnapshotSource&) = delete;

  // Sets the path and maps it when possible (child_init). Never throws.
  void open(const char* path) noexcept;
  // now_ns: CLOCK_MONOTONIC(_COARSE). *transition reports a health change that
  // this call was the first to see.
  // shared: the server's hysteresis state (null: plain comparisons).
  void compute(const ServerSettings& settings, std::uint64_t now_ns, RequestValues& out, Transition* transition,
               SharedState* shared = nullptr) noexcept;
  // compute() for a snapshot compute() has found fresh, while its sequence
  // has not moved since this thread's copy. Null: anything else, for
  // compute() to handle (a new sequence to copy, health transitions,
  // re-opening, faults). The answer is the calling thread's, valid until its
  // next call; settings must stay where they are (httpd's configuration
  // does). Inline: nearly every request only finds that the last answer
  // still holds.
  // values: the calling thread's for this vhost (the caller's to keep).
  const FreshRequest* compute_fresh(const ServerSettings& settings, std::uint64_t now_ns, SharedState* shared,
                                    FreshValues& values) noexcept {
    const snapshot::SnapshotFile* file = fresh_file_.load(std::memory_order_acquire);
    if (file == nullptr) return nullptr;
    // Without the fault guard: a fault is repaired (see fault_guard.hpp), and
    // reads 0.
    const std::uint64_t sequence = load_mapped_word(file->sync.sequence, std::memory_order_acquire);
    const std::uint64_t heartbeat = load_mapped_word(file->sync.heartbeat_ns, std::memory_order_relaxed);
    const std::uint64_t generation = generation_.load(std::memory_order_relaxed);
    // The last answer, made from a consistent copy of this very file and
    // sequence and a live heartbeat, holds while none of them has moved.
    if (heartbeat == values.last_heartbeat && now_ns < values.until_ns && sequence == values.sequence &&
        file == values.last_file && generation == values.generation && &settings == values.settings &&
        (shared == nullptr || shared->state_word(settings.verdict_slot) == values.last_state_word)) {
      return &values.last;
    }
    return answer_fresh(settings, values, file, sequence, heartbeat, generation, now_ns, shared);
  }
  // The calling thread's last consistent copy (valid after a fresh compute).
  [[nodiscard]] static const snapshot::Payload& thread_payload() noexcept;

  [[nodiscard]] const char* path() const noexcept { return path_; }
  [[nodiscard]] snapshot::ReadError last_open_error() const noexcept { return last_error_.load(std::memory_order_relaxed); }

 private:
  const FreshRequest* answer_fresh(const ServerSettings& settings, FreshValues& values,
                                   const snapshot::SnapshotFile* file, std::uint64_t sequence, std::uint64_t heartbeat,
                                   std::uint64_t generation, std::uint64_t now_ns, SharedState* shared) noexcept;
  bool reopen_if_due(std::uint64_t now_ns) noexcept;
  struct Refreshed {
    Health health = Health::missing;
    bool has_age = false;  // a consistent copy exists, whatever its age
    std::uint64_t age_ns = 0;
    const snapshot::SnapshotFile* fresh_file = nullptr;  // for compute_fresh()
  };
  Refreshed refresh(const ServerSettings& settings, std::uint64_t now_ns) noexcept;
  void abandon(const snapshot::SnapshotFile* file) noexcept;
  Transition note_health(Health health) noexcept;

  char path_[4096] = {};
  std::atomic<const snapshot::SnapshotFile*> current_{nullptr};
  // The current file while compute() finds it fresh and its faults can be
  // repaired (compute_fresh() reads it without a fault guard); null otherwise.
  std::atomic<const snapshot::SnapshotFile*> fresh_file_{nullptr};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<std::uint64_t> next_reopen_ns_{0};
  std::atomic<int> health_{-1};
  std::atomic<snapshot::ReadError> last_error_{snapshot::ReadError::missing};
  std::mutex reopen_mutex_;
  snapshot::ReadOnlyMapping current_mapping_;  // guarded by reopen_mutex_
  std::vector<const snapshot::SnapshotFile*> retired_;
};

[[nodiscard]] inline std::uint64_t coarse_monotonic_now_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

}  // namespace coupecircuit::module
