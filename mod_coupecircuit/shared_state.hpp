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

struct alignas(64) VerdictSlot {
  std::atomic<std::uint64_t> name_hash;  // 0: free
  // bit 0: tripped; bits 1..63: CLOCK_MONOTONIC ns of the last change (even).
  std::atomic<std::uint64_t> state;
  std::atomic<std::uint64_t> trips;  // how many times it tripped
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
  // below its RELEASE. Returns whether the vhost is tripped now.
  bool update(int slot, bool over, bool under, std::uint64_t now_ns, std::uint64_t hold_ns) noexcept;
  [[nodiscard]] bool is_tripped(int slot) const noexcept;
  [[nodiscard]] std::uint64_t trips(int slot) const noexcept;

  void count_shed(ShedReason reason) noexcept;
  [[nodiscard]] std::uint64_t shed_count(ShedReason reason) const noexcept;
  [[nodiscard]] bool valid() const noexcept { return block_ != nullptr; }

 private:
  SharedBlock* block_ = nullptr;
};

}  // namespace coupecircuit::module
