#include "fault_guard.hpp"

#include <sys/mman.h>

#include <atomic>
#include <csignal>
#include <cstdint>

namespace coupecircuit::module::fault_guard {
namespace {

thread_local sigjmp_buf* t_guard = nullptr;

// Entries: the mapping's address, with kRepairedBit once repaired.
constexpr std::size_t kRepairableSlots = 64;
constexpr std::uintptr_t kRepairedBit = 1;
std::atomic<std::uintptr_t> g_repairable[kRepairableSlots];

// From the handler: only atomics and mmap (a plain system call).
bool repair_fault(const void* fault_address) noexcept {
  const auto fault = reinterpret_cast<std::uintptr_t>(fault_address);  // NOLINT
  for (auto& slot : g_repairable) {
    const std::uintptr_t entry = slot.load(std::memory_order_acquire);
    const std::uintptr_t address = entry & ~kRepairedBit;
    if (address == 0 || fault < address || fault - address >= snapshot::kTotalSize) continue;
    if (!map_zeros_over(reinterpret_cast<const snapshot::SnapshotFile*>(address))) return false;  // NOLINT
    slot.fetch_or(kRepairedBit, std::memory_order_release);
    return true;
  }
  return false;
}

struct sigaction g_previous_sigbus {};
std::atomic<bool> g_installed{false};

void on_sigbus(int signal_number, siginfo_t* info, void* context) {
  sigjmp_buf* guard = t_guard;
  if (guard != nullptr) {
    t_guard = nullptr;
    siglongjmp(*guard, 1);
  }
  if (info != nullptr && repair_fault(info->si_addr)) return;  // the faulting read runs again, on zeros
  if ((g_previous_sigbus.sa_flags & SA_SIGINFO) != 0 && g_previous_sigbus.sa_sigaction != nullptr) {
    g_previous_sigbus.sa_sigaction(signal_number, info, context);
    return;
  }
  if (g_previous_sigbus.sa_handler == SIG_IGN) return;
  if (g_previous_sigbus.sa_handler == SIG_DFL || g_previous_sigbus.sa_handler == nullptr) {
    ::signal(SIGBUS, SIG_DFL);
    ::raise(SIGBUS);
    return;
  }
  g_previous_sigbus.sa_handler(signal_number);
}

}  // namespace

sigjmp_buf*& this_thread_guard() noexcept { return t_guard; }

void install() noexcept {
  if (g_installed.exchange(true)) return;
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  // SA_NODEFER: leaving the handler by siglongjmp must not leave SIGBUS
  // blocked (sigsetjmp does not save the mask: no syscall per request).
  action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGBUS, &action, &g_previous_sigbus);
}

bool map_zeros_over(const snapshot::SnapshotFile* file) noexcept {
  void* address = const_cast<snapshot::SnapshotFile*>(file);  // NOLINT
  return ::mmap(address, snapshot::kTotalSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == address;
}

bool add_repairable(const snapshot::SnapshotFile* file) noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(file);  // NOLINT
  for (auto& slot : g_repairable) {
    std::uintptr_t expected = 0;
    if (slot.compare_exchange_strong(expected, address)) return true;
  }
  return false;
}

void remove_repairable(const snapshot::SnapshotFile* file) noexcept {
  if (file == nullptr) return;
  const auto address = reinterpret_cast<std::uintptr_t>(file);  // NOLINT
  for (auto& slot : g_repairable) {
    std::uintptr_t entry = slot.load(std::memory_order_relaxed);
    if ((entry & ~kRepairedBit) == address) slot.compare_exchange_strong(entry, 0);
  }
}

Repair repair_state(const snapshot::SnapshotFile* file) noexcept {
  const auto address = reinterpret_cast<std::uintptr_t>(file);  // NOLINT
  for (const auto& slot : g_repairable) {
    const std::uintptr_t entry = slot.load(std::memory_order_acquire);
    if (address != 0 && (entry & ~kRepairedBit) == address) {
      return (entry & kRepairedBit) != 0 ? Repair::repaired : Repair::repairable;
    }
  }
  return Repair::none;
}

}  // namespace coupecircuit::module::fault_guard
