// State shared by every child of one Apache server: the hysteresis of each
// vhost's verdict and the counters of shed requests.
//
// Why in Apache rather than in coupecircuitd: the trip and release points
// come from each vhost's CoupeCircuitThreshold directives, which only Apache
// knows; and every child must agree on the state, so it lives in anonymous
// shared memory created by the parent in post_config (inherited by the
// children on fork, kept across graceful restarts in the process pool).
// Updates are single compare-and-swaps on one 64-bit word per vhost.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace coupecircuit::module {

enum class ShedReason : std::uint8_t { coupure = 0, surcharge = 1 };
inline constexpr std::size_t kShedReasonCount = 2;

inline constexpr std::uint64_t kTrippedBit = 1;

struct alignas(64) VerdictSlot {
  std::atomic<std::uint64_t> name_hash;  // 0: free
  // bit 0 (kTrippedBit): tripped; bits 1..63: CLOCK_MONOTONIC ns of the last
  // change (even).
  std::atomic<std::uint64_t> state;
  std::atomic<std::uint64_t> trips;  // how many times it tripped
  // For the status page, written on a change only: CLOCK_REALTIME seconds of
  // the last trip and of the last release (0: never), and which values were
  // above their RELEASE at the last trip (kTripReason* bits).
  std::atomic<std::int64_t> tripped_at_wall_s;
  std::atomic<std::int64_t> released_at_wall_s;
  std::atomic<std::uint64_t> trip_reasons;
};
static_assert(sizeof(VerdictSlot) == 64);

inline constexpr std::uint64_t kTripReasonSessions = 1;
inline constexpr std::uint64_t kTripReasonLoad = 2;
inline constexpr std::uint64_t kTripReasonSaturation = 4;

// A slot's last transitions, as the status page shows them.
struct SlotTransitions {
  std::int64_t tripped_at_wall_s = 0;
  std::int64_t released_at_wall_s = 0;
  std::uint64_t trip_reasons = 0;
  std::uint64_t trips = 0;
};

inline constexpr std::size_t kVerdictSlots = 512;

struct SharedBlock {
  std::uint64_t magic;
  std::atomic<std::uint64_t> shed[kShedReasonCount];
  std::atomic<std::uint64_t> started_ns;
  VerdictSlot slots[kVerdictSlots];
};
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

// A view of the shared block (memory provided by the caller: anonymous shared
// mapping in Apache, plain memory in tests).
class SharedState {
 public:
  SharedState() = default;
  explicit SharedState(SharedBlock* block) noexcept : block_(block) {}

  // Maps a new anonymous MAP_SHARED block; nullptr on failure.
  static SharedBlock* create_block() noexcept;
  static void initialise(SharedBlock& block) noexcept;

  // Finds or claims the slot of a vhost (parent, at configuration time).
  // -1 when the table is full (the vhost then has no hysteresis).
  [[nodiscard]] int slot_for(std::uint64_t name_hash) noexcept;

  // Applies hysteresis. over: a value reached its TRIP; under: every value is
  // below its RELEASE; reasons: kTripReason* of the values above their
  // RELEASE, kept with a trip. Returns whether the vhost is tripped now.
  bool update(int slot, bool over, bool under, std::uint64_t now_ns, std::uint64_t hold_ns,
              std::uint64_t reasons = 0) noexcept {
    if (block_ == nullptr || slot < 0) return over;  // no shared state: plain comparison
    // Nearly every call: nothing to change, one load.
    const std::uint64_t word = state_word(slot);
    if (!wants_change(word, over, under)) return (word & kTrippedBit) != 0;
    return change(slot, over, under, now_ns, hold_ns, reasons);
  }
  [[nodiscard]] bool tracks(int slot) const noexcept { return block_ != nullptr && slot >= 0; }
  // The slot's state word (0 without shared state), and whether update()
  // would change a slot in that state: while it would not, and the word stays
  // the same, update() answers the same.
  [[nodiscard]] std::uint64_t state_word(int slot) const noexcept {
    if (block_ == nullptr || slot < 0) return 0;
    return block_->slots[static_cast<std::size_t>(slot)].state.load(std::memory_order_acquire);
  }
  [[nodiscard]] static bool wants_change(std::uint64_t word, bool over, bool under) noexcept {
    return (word & kTrippedBit) != 0 ? under : over;
  }
  [[nodiscard]] bool is_tripped(int slot) const noexcept;
  [[nodiscard]] std::uint64_t trips(int slot) const noexcept;
  [[nodiscard]] SlotTransitions transitions(int slot) const noexcept;

  void count_shed(ShedReason reason) noexcept;
  [[nodiscard]] std::uint64_t shed_count(ShedReason reason) const noexcept;
  [[nodiscard]] bool valid() const noexcept { return block_ != nullptr; }

 private:
  bool change(int slot, bool over, bool under, std::uint64_t now_ns, std::uint64_t hold_ns,
              std::uint64_t reasons) noexcept;

  SharedBlock* block_ = nullptr;
};

}  // namespace coupecircuit::module
