// The SIGBUS guard of the snapshot mappings, process-wide.
//
// A snapshot file truncated under a live mapping (an operator's mistake, a
// full disk) makes any access to the missing pages raise SIGBUS. Two ways
// keep that from killing an Apache child:
//   * guarded(): the copies of the payload run with a per-thread guard set,
//     and the handler turns a fault there into a failed read;
//   * repairable mappings: every request reads the sync line (sequence,
//     heartbeat) of the current mapping without a guard (sigsetjmp would cost
//     more than the read). For a fault there the handler maps zeros over the
//     whole mapping and lets the read complete: a heartbeat of 0 is never
//     fresh, and the reader then drops the file (repair_state() says
//     repaired). Such address ranges are never unmapped, only replaced by
//     zeros, so the handler never maps over memory that is no longer ours.
// Faults elsewhere go to the handler that was there before.
#pragma once

#include <csetjmp>

#include "snapshot_layout.hpp"

namespace coupecircuit::module::fault_guard {

// Installs the handler (once per process).
void install() noexcept;

// The mappings whose faults the handler repairs. false: the table is full
// (the mapping is then only read under guarded()).
bool add_repairable(const snapshot::SnapshotFile* file) noexcept;
void remove_repairable(const snapshot::SnapshotFile* file) noexcept;
// Replaces a mapping's pages by zeros (the address range stays ours).
bool map_zeros_over(const snapshot::SnapshotFile* file) noexcept;

enum class Repair : unsigned char { none, repairable, repaired /* its pages are zeros now */ };
[[nodiscard]] Repair repair_state(const snapshot::SnapshotFile* file) noexcept;

// The calling thread's guard: where the handler jumps on a fault.
[[nodiscard]] sigjmp_buf*& this_thread_guard() noexcept;

// Runs read() with the calling thread's guard set; false when it faulted.
template <typename Read>
[[nodiscard]] bool guarded(Read read) noexcept {
  sigjmp_buf guard;
  sigjmp_buf*& slot = this_thread_guard();
  // sigsetjmp does not save the signal mask: no system call per copy (the
  // handler is SA_NODEFER, so leaving it by siglongjmp leaves SIGBUS open).
  if (sigsetjmp(guard, 0) != 0) {
    this_thread_guard() = nullptr;
    return false;
  }
  slot = &guard;
  read();
  slot = nullptr;
  return true;
}

}  // namespace coupecircuit::module::fault_guard
