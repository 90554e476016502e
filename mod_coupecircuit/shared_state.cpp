#include "shared_state.hpp"

#include <sys/mman.h>

#include <ctime>
#include <new>

namespace coupecircuit::module {
namespace {
constexpr std::uint64_t kMagic = 0x4343534841524544ULL;  // "CCSHARED"
}  // namespace

SharedBlock* SharedState::create_block() noexcept {
  void* memory = ::mmap(nullptr, sizeof(SharedBlock), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) return nullptr;
  auto* block = new (memory) SharedBlock;
  initialise(*block);
  return block;
}

void SharedState::initialise(SharedBlock& block) noexcept {
  block.magic = kMagic;
  for (auto& counter : block.shed) counter.store(0, std::memory_order_relaxed);
  block.started_ns.store(0, std::memory_order_relaxed);
  for (auto& slot : block.slots) {
    slot.name_hash.store(0, std::memory_order_relaxed);
    slot.state.store(0, std::memory_order_relaxed);
    slot.trips.store(0, std::memory_order_relaxed);
    slot.tripped_at_wall_s.store(0, std::memory_order_relaxed);
    slot.released_at_wall_s.store(0, std::memory_order_relaxed);
    slot.trip_reasons.store(0, std::memory_order_relaxed);
  }
}

int SharedState::slot_for(std::uint64_t name_hash) noexcept {
  if (block_ == nullptr) return -1;
  const std::uint64_t key = name_hash == 0 ? 1 : name_hash;
  for (std::size_t probe = 0; probe < kVerdictSlots; ++probe) {
    const std::size_t index = (key + probe) % kVerdictSlots;
    std::uint64_t current = block_->slots[index].name_hash.load(std::memory_order_acquire);
    if (current == key) return static_cast<int>(index);
    if (current == 0 && block_->slots[index].name_hash.compare_exchange_strong(current, key)) {
      return static_cast<int>(index);
    }
    if (current == key) return static_cast<int>(index);  // claimed by another thread meanwhile
  }
  return -1;
}

bool SharedState::change(int slot, bool over, bool under, std::uint64_t now_ns, std::uint64_t hold_ns,
                         std::uint64_t reasons) noexcept {
  VerdictSlot& entry = block_->slots[static_cast<std::size_t>(slot)];
  std::uint64_t state = entry.state.load(std::memory_order_acquire);
  for (;;) {
    const bool tripped = (state & kTrippedBit) != 0;
    const bool wants_change = tripped ? under : over;
    const std::uint64_t since = state & ~kTrippedBit;
    // Hold delays only the release (anti-flap): a tripped vhost stays tripped
    // at least hold_ns after its trip, while a trip is always immediate, as a
    // breaker's.
    if (!wants_change || (tripped && now_ns - since < hold_ns)) return tripped;
    const std::uint64_t next = ((now_ns | kTrippedBit) ^ kTrippedBit) | (tripped ? 0 : kTrippedBit);
    if (entry.state.compare_exchange_weak(state, next == 0 ? 2 : next, std::memory_order_acq_rel)) {
      // Only the child that made the change writes these (a wall clock read
      // per transition, not per request).
      timespec wall{};
      ::clock_gettime(CLOCK_REALTIME, &wall);
      if (tripped) {
        entry.released_at_wall_s.store(wall.tv_sec, std::memory_order_relaxed);
      } else {
        entry.trip_reasons.store(reasons, std::memory_order_relaxed);
        entry.tripped_at_wall_s.store(wall.tv_sec, std::memory_order_relaxed);
        entry.trips.fetch_add(1, std::memory_order_relaxed);
      }
      return !tripped;
    }
  }
}

bool SharedState::is_tripped(int slot) const noexcept {
  if (block_ == nullptr || slot < 0) return false;
  return (block_->slots[static_cast<std::size_t>(slot)].state.load(std::memory_order_relaxed) & kTrippedBit) != 0;
}

std::uint64_t SharedState::trips(int slot) const noexcept {
  if (block_ == nullptr || slot < 0) return 0;
  return block_->slots[static_cast<std::size_t>(slot)].trips.load(std::memory_order_relaxed);
}

SlotTransitions SharedState::transitions(int slot) const noexcept {
  SlotTransitions result;
  if (block_ == nullptr || slot < 0) return result;
  const VerdictSlot& entry = block_->slots[static_cast<std::size_t>(slot)];
  result.tripped_at_wall_s = entry.tripped_at_wall_s.load(std::memory_order_relaxed);
  result.released_at_wall_s = entry.released_at_wall_s.load(std::memory_order_relaxed);
  result.trip_reasons = entry.trip_reasons.load(std::memory_order_relaxed);
  result.trips = entry.trips.load(std::memory_order_relaxed);
  return result;
}

void SharedState::count_shed(ShedReason reason) noexcept {
  if (block_ != nullptr) block_->shed[static_cast<std::size_t>(reason)].fetch_add(1, std::memory_order_relaxed);
}

std::uint64_t SharedState::shed_count(ShedReason reason) const noexcept {
  return block_ == nullptr ? 0 : block_->shed[static_cast<std::size_t>(reason)].load(std::memory_order_relaxed);
}

}  // namespace coupecircuit::module
