#include "request_values.hpp"

#include <sys/mman.h>

#include <csetjmp>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <ctime>

#include "decimal.hpp"

namespace coupecircuit::module {
namespace {

constexpr std::uint64_t kReopenPeriodNs = 1'000'000'000ULL;
constexpr unsigned kCopyAttempts = 64;
// Replaced mappings stay mapped: another thread may be copying from one.
// Beyond this count the oldest lets its file go, its pages replaced by
// zeros: the address range stays reserved (see g_repairable).
constexpr std::size_t kMaxRetiredMappings = 16;

// One per thread (worker and event MPMs run requests on many threads).
// Constant-initialised, so access needs no guard. A request reaches it once
// and passes it on: in a loaded module every thread_local access is a call.
struct ThreadView {
  const snapshot::SnapshotFile* file;
  std::uint64_t generation;
  std::uint64_t sequence;
  bool valid;
  unsigned current;  // index of the consistent copy; the other one is scratch
  // A snapshot file truncated under a live mapping (an operator's mistake, a
  // full disk) makes any access to the missing pages raise SIGBUS. Copies
  // run with this guard set, and the handler turns the fault of such an
  // access into a failed read instead of a dead Apache child (see also
  // g_repairable). Faults elsewhere go to the handler that was there before.
  sigjmp_buf* fault_guard;
  std::uint64_t revisions;  // FreshValues made by this thread
  snapshot::Payload payloads[2];
  [[nodiscard]] const snapshot::Payload& payload() const noexcept { return payloads[current]; }
};
thread_local ThreadView t_view{};

// The calling thread's view. The compiler would compute a thread_local's
// address again after every call (here a call to __tls_get_addr each time):
// the empty asm makes it keep the first one.
ThreadView& this_thread_view() noexcept {
  ThreadView* view = &t_view;
  __asm__("" : "+r"(view));
  return *view;
}

// The snapshot mappings whose faults the SIGBUS handler repairs. Every
// request reads the sync line (sequence, heartbeat) of the current mapping;
// setting a fault guard for that (sigsetjmp) would cost more than the read.
// The handler instead maps zeros over the whole mapping and lets the read
// complete: a heartbeat of 0 is never fresh, and compute() then drops the
// file as it does after a guarded fault. Such ranges are never unmapped, only
// replaced by zeros, so the handler never maps over memory that is no longer
// ours. Entries: the mapping's address, with kRepairedBit once repaired.
constexpr std::size_t kRepairableSlots = 64;
constexpr std::uintptr_t kRepairedBit = 1;
std::atomic<std::uintptr_t> g_repairable[kRepairableSlots];

// Replaces a mapping's pages by zeros (the address range stays ours).
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
  return false;  // full: this mapping is only read under the fault guard
}

void remove_repairable(const snapshot::SnapshotFile* file) noexcept {
  if (file == nullptr) return;
  const auto address = reinterpret_cast<std::uintptr_t>(file);  // NOLINT
  for (auto& slot : g_repairable) {
    std::uintptr_t entry = slot.load(std::memory_order_relaxed);
    if ((entry & ~kRepairedBit) == address) slot.compare_exchange_strong(entry, 0);
  }
}

enum class Repair : std::uint8_t { none, repairable, repaired /* its pages are zeros now */ };

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

// From the SIGBUS handler: only atomics and mmap (a plain system call).
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
std::atomic<bool> g_sigbus_installed{false};

void on_sigbus(int signal_number, siginfo_t* info, void* context) {
  sigjmp_buf* guard = t_view.fault_guard;
  if (guard != nullptr) {
    t_view.fault_guard = nullptr;
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

// snapshot::try_copy_payload() (the seqlock read of snapshot_layout.hpp),
// but only as far as the runtime overrides in use: most snapshots have none,
// and their table is nearly all of the payload. The rest of `out` is left as
// it was; readers go no further than vhost_override_count.
bool try_copy_used_payload(const snapshot::SnapshotFile& file, snapshot::Payload& out, std::uint64_t* sequence_out,
                           unsigned max_attempts) noexcept {
  static_assert(offsetof(snapshot::Payload, vhost_overrides) % sizeof(std::uint64_t) == 0);
  static_assert(sizeof(snapshot::VhostOverride) % sizeof(std::uint64_t) == 0);
  constexpr std::size_t kFixedWords = offsetof(snapshot::Payload, vhost_overrides) / sizeof(std::uint64_t);
  constexpr std::size_t kOverrideWords = sizeof(snapshot::VhostOverride) / sizeof(std::uint64_t);
  const auto* source = reinterpret_cast<const std::uint64_t*>(&file.payload);  // NOLINT
  auto* destination = reinterpret_cast<unsigned char*>(&out);                  // NOLINT
  const auto copy_words = [&](std::size_t from, std::size_t count) {
    for (std::size_t i = from; i < from + count; ++i) {
      const std::uint64_t word = load_mapped_word(source[i], std::memory_order_relaxed);
      std::memcpy(destination + i * sizeof word, &word, sizeof word);
    }
  };
  for (unsigned attempt = 0; attempt < max_attempts; ++attempt) {
    const std::uint64_t before = snapshot::load_sequence(file);
    if ((before & 1U) != 0) continue;  // the writer is at it
    copy_words(0, kFixedWords);
    const std::size_t overrides = out.vhost_override_count < snapshot::kMaxVhostOverrides
                                      ? out.vhost_override_count
                                      : snapshot::kMaxVhostOverrides;
    copy_words(kFixedWords, overrides * kOverrideWords);
    std::atomic_thread_fence(std::memory_order_acquire);
    const std::uint64_t after = load_mapped_word(file.sync.sequence, std::memory_order_relaxed);
    if (before == after) {
      *sequence_out = before;
      return true;
    }
  }
  return false;
}

// Copies the payload into the scratch buffer, which becomes the consistent
// copy when the copy succeeds. Only called under the fault guard.
[[gnu::noinline]] void copy_payload(ThreadView& view, const snapshot::SnapshotFile& file,
                                    std::uint64_t generation) noexcept {
  // A failed copy may hold a mix of two payloads and must never replace the
  // last consistent one.
  const unsigned scratch = view.current ^ 1U;
  std::uint64_t copied = 0;
  if (snapshot::header_is_valid(file, snapshot::kTotalSize) &&
      try_copy_used_payload(file, view.payloads[scratch], &copied, kCopyAttempts)) {
    view.current = scratch;
    view.file = &file;
    view.generation = generation;
    view.sequence = copied;
    view.valid = true;
  } else if (view.file != &file || view.generation != generation) {
    view.valid = false;  // nothing consistent from this file yet
  }
}

// Copies the payload when the sequence moved, and reads the heartbeat. false
// when the mapping faulted.
[[gnu::noinline]] bool guarded_refresh(ThreadView& view, const snapshot::SnapshotFile& file, std::uint64_t generation,
                                       std::uint64_t* heartbeat) noexcept {
  sigjmp_buf guard;
  if (sigsetjmp(guard, 0) != 0) {
    view.fault_guard = nullptr;
    view.valid = false;
    view.file = nullptr;
    return false;
  }
  view.fault_guard = &guard;
  const std::uint64_t sequence = snapshot::load_sequence(file);
  if (view.sequence != sequence || view.file != &file || view.generation != generation || !view.valid) {
    copy_payload(view, file, generation);
  }
  *heartbeat = snapshot::load_heartbeat_ns(file);
  view.fault_guard = nullptr;
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

// The texts of 0 to 9999 and 0.00 to 99.99, made at compile time: in static
// storage, they outlive every request that points at them.
constexpr std::uint64_t kLastingNumbers = 10000;
constexpr std::size_t kLastingTextSize = 8;

struct NumberTexts {
  char text[kLastingNumbers][kLastingTextSize];
};

constexpr NumberTexts make_number_texts(bool centi) noexcept {
  NumberTexts texts{};
  for (std::uint64_t n = 0; n < kLastingNumbers; ++n) {
    char* out = texts.text[n];
    const std::uint64_t whole = centi ? n / 100 : n;
    std::size_t length = 0;
    for (std::uint64_t unit = 1000; unit > 1; unit /= 10) {
      if (whole >= unit || length > 0) out[length++] = static_cast<char>('0' + whole / unit % 10);
    }
    out[length++] = static_cast<char>('0' + whole % 10);
    if (centi) {
      out[length++] = '.';
      out[length++] = static_cast<char>('0' + n / 10 % 10);
      out[length++] = static_cast<char>('0' + n % 10);
    }
  }
  return texts;
}

constexpr NumberTexts kUnsignedTexts = make_number_texts(false);
constexpr NumberTexts kCentiTexts = make_number_texts(true);

const char* lasting_text(const NumberTexts& texts, std::uint64_t value, const char* rendered) noexcept {
  if (value >= kLastingNumbers) return nullptr;
  const char* text = texts.text[value];
  return std::strncmp(text, rendered, kLastingTextSize) == 0 ? text : nullptr;
}

}  // namespace

VhostLimits vhost_limits(const snapshot::Payload& payload, const ServerSettings& settings) noexcept {
  VhostLimits limits;
  const snapshot::ThresholdSet* vhost_override =
      payload.vhost_override_count == 0
          ? nullptr
          : find_vhost_override(payload, settings.vhost_hash, std::string_view(settings.vhost_name));
  limits.effective = resolve_thresholds(payload, vhost_override, settings.thresholds);
  // The directive's RELEASE applies to its own TRIP; a runtime override has
  // the default RELEASE (90 % of its TRIP).
  const EffectiveThresholds& effective = limits.effective;
  limits.sessions_release = effective.sessions_from == &settings.thresholds ? settings.sessions_release
                            : effective.sessions_from != nullptr ? default_release(effective.sessions_from->sessions)
                                                                 : 0;
  limits.load_release_centi = effective.load_from == &settings.thresholds ? settings.load_release_centi
                              : effective.load_from != nullptr ? default_release(effective.load_from->load_centi)
                                                               : 0;
  return limits;
}

namespace {

// A fresh payload judged for one vhost: its thresholds and the hysteresis
// inputs.
struct Evaluation {
  EffectiveThresholds effective;
  ThresholdCheck check;
  bool cut = false;
};

Evaluation evaluate(const snapshot::Payload& payload, const ServerSettings& settings) noexcept {
  Evaluation result;
  result.cut = (payload.flags & snapshot::kFlagCutActive) != 0;
  const VhostLimits limits = vhost_limits(payload, settings);
  result.effective = limits.effective;
  result.check = check_thresholds(payload, limits.effective, limits.sessions_release, limits.load_release_centi);
  return result;
}

// Works out what a vhost exports from the thread's fresh copy.
[[gnu::noinline]] void prepare_fresh(const ServerSettings& settings, ThreadView& view, FreshValues& out) noexcept {
  const snapshot::Payload& payload = view.payload();
  const Evaluation evaluation = evaluate(payload, settings);
  out.cut = evaluation.cut;
  out.over = evaluation.check.over;
  out.under = evaluation.check.under;
  out.sessions_high = evaluation.check.sessions_high;
  out.load_high = evaluation.check.load_high;
  out.has_seuil_sessions = evaluation.effective.sessions_from != nullptr;
  out.has_seuil_load = evaluation.effective.load_from != nullptr;
  std::size_t size = 0;
  const auto append = [&](std::size_t index, const char(&text)[snapshot::kTextCapacity]) {
    const std::size_t length = ::strnlen(text, snapshot::kTextCapacity - 1);
    out.offsets[index] = static_cast<std::uint8_t>(size);
    std::memcpy(out.texts + size, text, length);
    out.texts[size + length] = '\0';
    size += length + 1;
  };
  static constexpr char kNone[snapshot::kTextCapacity] = {};
  append(0, payload.load1_text);
  append(1, payload.sessions_active_text);
  append(2, out.has_seuil_sessions ? evaluation.effective.sessions_from->sessions_text : kNone);
  append(3, out.has_seuil_load ? evaluation.effective.load_from->load_text : kNone);
  out.texts_size = static_cast<std::uint8_t>(size);

  // The directive's thresholds live in the settings; the snapshot's numbers
  // (and its runtime overrides) have a static text when they are common.
  const auto lasting_threshold = [&](const snapshot::ThresholdSet* from, bool load) -> const char* {
    if (from == nullptr) return kNone;
    if (from == &settings.thresholds) return load ? settings.thresholds.load_text : settings.thresholds.sessions_text;
    return load ? lasting_centi_text(from->load_centi, out.texts + out.offsets[3])
                : lasting_unsigned_text(from->sessions, out.texts + out.offsets[2]);
  };
  out.lasting[0] = lasting_centi_text(payload.load_centi[0], out.texts + out.offsets[0]);
  out.lasting[1] = lasting_unsigned_text(payload.sessions_active, out.texts + out.offsets[1]);
  out.lasting[2] = lasting_threshold(evaluation.effective.sessions_from, false);
  out.lasting[3] = lasting_threshold(evaluation.effective.load_from, true);
  out.all_lasting =
      out.lasting[0] != nullptr && out.lasting[1] != nullptr && out.lasting[2] != nullptr && out.lasting[3] != nullptr;

  out.state_flags =
      static_cast<std::uint8_t>(state_code(Verdict::ok, out.cut, false, out.sessions_high, out.load_high));
  out.settings = &settings;
  out.generation = view.generation;
  out.sequence = view.sequence;
  out.revision = ++view.revisions;
}

}  // namespace

const char* lasting_unsigned_text(std::uint64_t value, const char* rendered) noexcept {
  return lasting_text(kUnsignedTexts, value, rendered);
}

const char* lasting_centi_text(std::uint64_t centi, const char* rendered) noexcept {
  return lasting_text(kCentiTexts, centi, rendered);
}

SnapshotSource::~SnapshotSource() {
  // current_mapping_ unmaps its file: the SIGBUS handler must forget it
  // first. Retired mappings stay mapped; they are read no more.
  remove_repairable(current_mapping_.file());
  for (const snapshot::SnapshotFile* file : retired_) remove_repairable(file);
}

void SnapshotSource::open(const char* path) noexcept {
  const std::size_t length = ::strnlen(path, sizeof path_ - 1);
  std::memcpy(path_, path, length);
  path_[length] = '\0';
  next_reopen_ns_.store(0, std::memory_order_relaxed);
  install_sigbus_guard();
  reopen_if_due(coarse_monotonic_now_ns());
  // A new configuration (httpd -X restarts in place) may put other settings
  // at the addresses the threads' FreshValues remember: a new generation
  // makes them all out of date.
  generation_.store(g_mapping_generation.fetch_add(1, std::memory_order_relaxed) + 1, std::memory_order_relaxed);
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
  fresh_file_.store(nullptr, std::memory_order_release);
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
      // Abandoned long before (re-opens are at least a second apart): its
      // file goes, its address range stays reserved, read as zeros.
      if (map_zeros_over(retired_.front())) remove_repairable(retired_.front());
      retired_.erase(retired_.begin());
    }
  } catch (...) {
    // Out of memory for the list: keep the old mapping (a small leak) rather
    // than unmap memory another thread may be reading.
  }
  current_mapping_ = std::move(*mapping);
  add_repairable(current_mapping_.file());
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

constinit thread_local ThreadFreshValues t_fresh_values{};

// compute_fresh() when the last answer does not hold: the age and the
// verdict again, maybe the vhost's values too.
const FreshRequest* SnapshotSource::answer_fresh(const ServerSettings& settings, FreshValues& values,
                                                 const snapshot::SnapshotFile* file, std::uint64_t sequence,
                                                 std::uint64_t heartbeat, std::uint64_t generation,
                                                 std::uint64_t now_ns, SharedState* shared) noexcept {
  ThreadView& view = this_thread_view();
  if (sequence != view.sequence || file != view.file || !view.valid || heartbeat == 0 ||
      generation != view.generation) {
    return nullptr;  // a new sequence to copy, or anything else compute() handles
  }
  const std::uint64_t age_ns = now_ns > heartbeat ? now_ns - heartbeat : 0;
  const std::uint64_t max_age_ns = settings.max_age_ns();
  if (age_ns > max_age_ns) return nullptr;  // stale: compute() says so
  if (values.settings != &settings || values.sequence != view.sequence || values.generation != view.generation) {
    prepare_fresh(settings, view, values);
  }
  // While no change is due, the hysteresis answers from its state word
  // alone; the answer then holds as long as that word.
  std::uint64_t word = 0;
  bool settled = true;
  bool tripped = values.over;  // without shared state: plain comparison
  if (shared != nullptr && shared->tracks(settings.verdict_slot)) {
    word = shared->state_word(settings.verdict_slot);
    settled = !SharedState::wants_change(word, values.over, values.under);
    tripped = settled ? (word & kTrippedBit) != 0
                      : shared->update(settings.verdict_slot, values.over, values.under, now_ns, settings.hold_ns(),
                                       trip_reasons(values.sessions_high, values.load_high));
  }
  const Verdict verdict = values.cut ? Verdict::coupure : tripped ? Verdict::surcharge : Verdict::ok;
  const std::uint64_t age = age_ns / 1'000'000'000ULL;
  FreshRequest& out = values.last;
  out.values = &values;
  out.age_seconds = age;
  out.age_text = age < kLastingNumbers ? kUnsignedTexts.text[age] : nullptr;
  out.stamp =
      age < kLastingNumbers ? values.revision << 16U | age << 2U | static_cast<std::uint64_t>(verdict) : kNoStamp;
  out.state = values.state_flags | state_code(verdict, false, tripped, false, false);
  out.tripped = tripped;
  out.verdict = verdict;
  // Until the next whole second of age, or staleness.
  const std::uint64_t next_second = heartbeat + (age + 1) * 1'000'000'000ULL;
  const std::uint64_t stale_at = heartbeat + max_age_ns + 1;
  values.last_file = file;
  values.last_heartbeat = heartbeat;
  values.last_state_word = word;
  values.until_ns = settled ? (next_second < stale_at ? next_second : stale_at) : 0;
  return &out;
}

void SnapshotSource::compute(const ServerSettings& settings, std::uint64_t now_ns, RequestValues& out,
                             Transition* transition, SharedState* shared) noexcept {
  const snapshot::SnapshotFile* file = current_.load(std::memory_order_acquire);
  if (file == nullptr && reopen_if_due(now_ns)) file = current_.load(std::memory_order_acquire);

  ThreadView& view = this_thread_view();
  Health health = Health::missing;
  std::uint64_t age_ns = 0;
  for (int round = 0; file != nullptr && round < 2; ++round) {
    const std::uint64_t generation = generation_.load(std::memory_order_relaxed);
    std::uint64_t heartbeat = 0;
    // A fault, under the guard or repaired since (its pages are zeros now):
    // truncated under us, re-open once the helper re-creates it.
    if (!guarded_refresh(view, *file, generation, &heartbeat) ||
        (heartbeat == 0 && repair_state(file) == Repair::repaired)) {
      abandon(file);
      file = nullptr;
      health = Health::missing;
      break;
    }
    age_ns = now_ns > heartbeat ? now_ns - heartbeat : 0;
    health = (view.valid && heartbeat != 0 && age_ns <= settings.max_age_ns()) ? Health::fresh : Health::stale;
    if (health == Health::fresh || round == 1 || !reopen_if_due(now_ns)) break;
    file = current_.load(std::memory_order_acquire);  // replaced: try the new file once
  }

  out.health = health;
  out.has_age = file != nullptr && health != Health::missing && view.valid;
  if (out.has_age) render_unsigned(out.age, sizeof out.age, age_ns / 1'000'000'000ULL);

  EffectiveThresholds effective;
  if (health == Health::fresh) {
    const snapshot::Payload& payload = view.payload();
    const Evaluation evaluation = evaluate(payload, settings);
    effective = evaluation.effective;
    out.has_values = true;
    copy_fixed(out.load_avg, payload.load1_text);
    copy_fixed(out.sessions, payload.sessions_active_text);
    out.cut = evaluation.cut;
    out.tripped = shared != nullptr ? shared->update(settings.verdict_slot, evaluation.check.over,
                                                     evaluation.check.under, now_ns, settings.hold_ns(),
                                                     trip_reasons(evaluation.check.sessions_high,
                                                                  evaluation.check.load_high))
                                    : evaluation.check.over;
    out.sessions_high = evaluation.check.sessions_high;
    out.load_high = evaluation.check.load_high;
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
  // From now on compute_fresh() serves this file, as long as it stays fresh.
  fresh_file_.store(health == Health::fresh && repair_state(file) == Repair::repairable ? file : nullptr,
                    std::memory_order_release);
}

}  // namespace coupecircuit::module
