#include "request_values.hpp"

#include <sys/mman.h>

#include <csetjmp>
#include <csignal>
#include <cstring>
#include <ctime>

#include "decimal.hpp"

namespace coupecircuit::module {
namespace {

constexpr std::uint64_t kReopenPeriodNs = 1'000'000'000ULL;
constexpr unsigned kCopyAttempts = 64;
// Replaced mappings stay mapped: another thread may be copying from one. The
// oldest is unmapped beyond this count; as re-opens are at least a second
// apart, it was abandoned long before any copy could still be running.
constexpr std::size_t kMaxRetiredMappings = 16;

// One per thread (worker and event MPMs run requests on many threads).
// Constant-initialised, so access needs no guard.
struct ThreadView {
  const snapshot::SnapshotFile* file;
  std::uint64_t generation;
  std::uint64_t sequence;
  bool valid;
  unsigned current;  // index of the consistent copy; the other one is scratch
  snapshot::Payload payloads[2];
  [[nodiscard]] const snapshot::Payload& payload() const noexcept { return payloads[current]; }
};
thread_local ThreadView t_view{};

// A snapshot file truncated under a live mapping (an operator's mistake, a
// full disk) makes any access to the missing pages raise SIGBUS. Every access
// to the mapping runs with this guard set, and the handler turns the fault of
// such an access into a failed read instead of a dead Apache child. Faults
// elsewhere go to the handler that was there before.
thread_local sigjmp_buf* t_fault_guard = nullptr;
struct sigaction g_previous_sigbus {};
std::atomic<bool> g_sigbus_installed{false};

void on_sigbus(int signal_number, siginfo_t* info, void* context) {
  sigjmp_buf* guard = t_fault_guard;
  if (guard != nullptr) {
    t_fault_guard = nullptr;
    siglongjmp(*guard, 1);
  }
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

void install_sigbus_guard() noexcept {
  if (g_sigbus_installed.exchange(true)) return;
  struct sigaction action {};
  action.sa_sigaction = on_sigbus;
  // SA_NODEFER: leaving the handler by siglongjmp must not leave SIGBUS
  // blocked (sigsetjmp does not save the mask: no syscall per request).
  action.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGBUS, &action, &g_previous_sigbus);
}

// Copies the payload when the sequence moved, and reads the heartbeat. Only
// called under the fault guard.
[[gnu::noinline]] std::uint64_t refresh_view(const snapshot::SnapshotFile& file, std::uint64_t generation) noexcept {
  ThreadView& view = t_view;
  const std::uint64_t sequence = snapshot::load_sequence(file);
  if (view.file != &file || view.generation != generation || view.sequence != sequence || !view.valid) {
    // Copy into the scratch buffer: a failed copy may hold a mix of two
    // payloads and must never replace the last consistent one.
    const unsigned scratch = view.current ^ 1U;
    std::uint64_t copied = 0;
    if (snapshot::header_is_valid(file, snapshot::kTotalSize) &&
        snapshot::try_copy_payload(file, view.payloads[scratch], &copied, kCopyAttempts)) {
      view.current = scratch;
      view.file = &file;
      view.generation = generation;
      view.sequence = copied;
      view.valid = true;
    } else if (view.file != &file || view.generation != generation) {
      view.valid = false;  // nothing consistent from this file yet
    }
  }
  return snapshot::load_heartbeat_ns(file);
}

// false when the mapping faulted.
bool guarded_refresh(const snapshot::SnapshotFile& file, std::uint64_t generation, std::uint64_t* heartbeat) noexcept {
  sigjmp_buf guard;
  if (sigsetjmp(guard, 0) != 0) {
    t_fault_guard = nullptr;
    t_view.valid = false;
    t_view.file = nullptr;
    return false;
  }
  t_fault_guard = &guard;
  *heartbeat = refresh_view(file, generation);
  t_fault_guard = nullptr;
  return true;
}

// Mapping generations are unique in the process (not per source), so a view
// never mistakes a new mapping at a recycled address for the one it copied.
std::atomic<std::uint64_t> g_mapping_generation{0};

template <std::size_t N>
void copy_fixed(char (&destination)[N], const char (&source)[N]) noexcept {
  std::memcpy(destination, source, N);
  destination[N - 1] = '\0';
}

}  // namespace

std::uint64_t coarse_monotonic_now_ns() noexcept {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(now.tv_nsec);
}

void SnapshotSource::open(const char* path) noexcept {
  const std::size_t length = ::strnlen(path, sizeof path_ - 1);
  std::memcpy(path_, path, length);
  path_[length] = '\0';
  next_reopen_ns_.store(0, std::memory_order_relaxed);
  install_sigbus_guard();
  reopen_if_due(coarse_monotonic_now_ns());
}

void SnapshotSource::abandon(const snapshot::SnapshotFile* file) noexcept {
  std::lock_guard lock(reopen_mutex_);
  if (current_mapping_.file() != file) return;
  try {
    retired_.push_back(current_mapping_.release());  // still mapped: other threads may touch it (guarded)
  } catch (...) {
    (void)current_mapping_.release();  // leak the mapping rather than unmap it under a reader
  }
  current_.store(nullptr, std::memory_order_release);
  next_reopen_ns_.store(0, std::memory_order_relaxed);
  last_error_.store(snapshot::ReadError::bad_size, std::memory_order_relaxed);
}

bool SnapshotSource::reopen_if_due(std::uint64_t now_ns) noexcept {
  if (now_ns < next_reopen_ns_.load(std::memory_order_relaxed)) return false;
  std::unique_lock lock(reopen_mutex_, std::try_to_lock);
  if (!lock.owns_lock() || now_ns < next_reopen_ns_.load(std::memory_order_relaxed)) return false;
  next_reopen_ns_.store(now_ns + kReopenPeriodNs, std::memory_order_relaxed);

  auto mapping = snapshot::ReadOnlyMapping::open(path_);
  if (!mapping) {
    last_error_.store(mapping.error(), std::memory_order_relaxed);
    return false;
  }
  if (current_mapping_.file() != nullptr && current_mapping_.device() == mapping->device() &&
      current_mapping_.inode() == mapping->inode()) {
    return false;  // same file: nothing better to switch to
  }
  try {
    if (current_mapping_.file() != nullptr) retired_.push_back(current_mapping_.release());
    if (retired_.size() > kMaxRetiredMappings) {
      ::munmap(const_cast<snapshot::SnapshotFile*>(retired_.front()), snapshot::kTotalSize);  // NOLINT
      retired_.erase(retired_.begin());
    }
  } catch (...) {
    // Out of memory for the list: keep the old mapping (a small leak) rather
    // than unmap memory another thread may be reading.
  }
  current_mapping_ = std::move(*mapping);
  generation_.store(g_mapping_generation.fetch_add(1, std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  current_.store(current_mapping_.file(), std::memory_order_release);
  return true;
}

Transition SnapshotSource::note_health(Health health) noexcept {
  const int now = static_cast<int>(health);
  int before = health_.load(std::memory_order_relaxed);
  if (before == now) return Transition::none;
  if (!health_.compare_exchange_strong(before, now, std::memory_order_relaxed)) return Transition::none;
  switch (health) {
    case Health::fresh: return before < 0 ? Transition::none : Transition::recovered;
    case Health::stale: return Transition::became_stale;
    case Health::missing: return before == static_cast<int>(Health::stale) ? Transition::none : Transition::became_missing;
  }
  return Transition::none;
}

const snapshot::Payload& SnapshotSource::thread_payload() noexcept { return t_view.payload(); }

void SnapshotSource::compute(const ServerSettings& settings, std::uint64_t now_ns, RequestValues& out,
                             Transition* transition, SharedState* shared) noexcept {
  const snapshot::SnapshotFile* file = current_.load(std::memory_order_acquire);
  if (file == nullptr && reopen_if_due(now_ns)) file = current_.load(std::memory_order_acquire);

  Health health = Health::missing;
  std::uint64_t age_ns = 0;
  for (int round = 0; file != nullptr && round < 2; ++round) {
    const std::uint64_t generation = generation_.load(std::memory_order_relaxed);
    std::uint64_t heartbeat = 0;
    if (!guarded_refresh(*file, generation, &heartbeat)) {
      abandon(file);  // truncated under us: re-open once the helper re-creates it
      file = nullptr;
      health = Health::missing;
      break;
    }
    age_ns = now_ns > heartbeat ? now_ns - heartbeat : 0;
    health = (t_view.valid && heartbeat != 0 && age_ns <= settings.max_age_ns()) ? Health::fresh : Health::stale;
    if (health == Health::fresh || round == 1 || !reopen_if_due(now_ns)) break;
    file = current_.load(std::memory_order_acquire);  // replaced: try the new file once
  }

  out.health = health;
  out.has_age = file != nullptr && health != Health::missing && t_view.valid;
  if (out.has_age) render_unsigned(out.age, sizeof out.age, age_ns / 1'000'000'000ULL);

  EffectiveThresholds effective;
  if (health == Health::fresh) {
    const snapshot::Payload& payload = t_view.payload();
    out.has_values = true;
    copy_fixed(out.load_avg, payload.load1_text);
    copy_fixed(out.sessions, payload.sessions_active_text);
    out.cut = (payload.flags & snapshot::kFlagCutActive) != 0;
    const snapshot::ThresholdSet* vhost_override =
        payload.vhost_override_count == 0
            ? nullptr
            : find_vhost_override(payload, settings.vhost_hash, std::string_view(settings.vhost_name));
    effective = resolve_thresholds(payload, vhost_override, settings.thresholds);
    // The directive's RELEASE applies to its own TRIP; a runtime override has
    // the default RELEASE (90 % of its TRIP).
    const std::uint64_t sessions_release =
        effective.sessions_from == &settings.thresholds ? settings.sessions_release
        : effective.sessions_from != nullptr            ? default_release(effective.sessions_from->sessions)
                                                        : 0;
    const std::uint64_t load_release =
        effective.load_from == &settings.thresholds ? settings.load_release_centi
        : effective.load_from != nullptr            ? default_release(effective.load_from->load_centi)
                                                    : 0;
    const ThresholdCheck check = check_thresholds(payload, effective, sessions_release, load_release);
    out.tripped = shared != nullptr ? shared->update(settings.verdict_slot, check.over, check.under, now_ns,
                                                     settings.hold_ns())
                                    : check.over;
    out.sessions_high = check.sessions_high;
    out.load_high = check.load_high;
    out.verdict = out.cut ? Verdict::coupure : out.tripped ? Verdict::surcharge : Verdict::ok;
  } else {
    // No value is invented: only the vhost's own configuration is exported.
    out.has_values = false;
    out.cut = false;
    out.tripped = false;
    out.sessions_high = false;
    out.load_high = false;
    if (settings.thresholds.has_sessions != 0) effective.sessions_from = &settings.thresholds;
    if (settings.thresholds.has_load != 0) effective.load_from = &settings.thresholds;
    out.verdict = Verdict::inconnu;
  }
  out.has_seuil_sessions = effective.sessions_from != nullptr;
  if (out.has_seuil_sessions) copy_fixed(out.seuil_sessions, effective.sessions_from->sessions_text);
  out.has_seuil_load = effective.load_from != nullptr;
  if (out.has_seuil_load) copy_fixed(out.seuil_load, effective.load_from->load_text);

  const Transition seen = note_health(health);
  if (transition != nullptr) *transition = seen;
}

}  // namespace coupecircuit::module
