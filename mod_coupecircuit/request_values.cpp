#include "request_values.hpp"

#include <sys/stat.h>

#include <cstddef>
#include <cstring>
#include <ctime>

#include "decimal.hpp"
#include "fault_guard.hpp"

namespace coupecircuit::module {
namespace {

constexpr std::uint64_t kReopenPeriodNs = 1'000'000'000ULL;
constexpr unsigned kCopyAttempts = 64;
// Replaced mappings stay mapped: another thread may be copying from one.
// Beyond this count the oldest lets its file go, its pages replaced by
// zeros: the address range stays reserved (see fault_guard.hpp).
constexpr std::size_t kMaxRetiredMappings = 16;

// One per thread (worker and event MPMs run requests on many threads): its
// last consistent copy of the payload. Constant-initialised, so access needs
// no guard. A request reaches it once and passes it on: in a loaded module
// every thread_local access is a call.
struct ThreadView {
  const snapshot::SnapshotFile* file;
  std::uint64_t generation;
  std::uint64_t sequence;
  bool valid;
  unsigned current;         // index of the consistent copy; the other one is scratch
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

// Copies the payload into the scratch buffer, which becomes the consistent
// copy when the copy succeeds. Only called under the fault guard.
[[gnu::noinline]] void copy_payload(ThreadView& view, const snapshot::SnapshotFile& file,
                                    std::uint64_t generation) noexcept {
  // A failed copy may hold a mix of two payloads and must never replace the
  // last consistent one.
  const unsigned scratch = view.current ^ 1U;
  std::uint64_t copied = 0;
  if (snapshot::header_is_valid(file, snapshot::kTotalSize) &&
      snapshot::try_copy_payload(file, view.payloads[scratch], &copied, kCopyAttempts,
                                     snapshot::CopyExtent::used_overrides)) {
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
  const bool read = fault_guard::guarded([&] {
    const std::uint64_t sequence = snapshot::load_sequence(file);
    if (view.sequence != sequence || view.file != &file || view.generation != generation || !view.valid) {
      copy_payload(view, file, generation);
    }
    *heartbeat = snapshot::load_heartbeat_ns(file);
  });
  if (!read) {
    view.valid = false;
    view.file = nullptr;
  }
  return read;
}

// Mapping generations are unique in the process (not per source), so a view
// never mistakes a new mapping at a recycled address for the one it copied.
std::atomic<std::uint64_t> g_mapping_generation{0};

// A fresh payload judged for one vhost: its thresholds and the hysteresis
// inputs.
struct Evaluation {
  EffectiveThresholds effective;
  ThresholdCheck check;
  bool cut = false;
  bool sessions_known = true;
};

// The directive's RELEASE applies to its own TRIP; a runtime override has
// the default RELEASE (90 % of its TRIP).
std::uint64_t release_of(const snapshot::ThresholdSet* from, const ServerSettings& settings, bool load) noexcept {
  if (from == nullptr) return 0;
  if (from == &settings.thresholds) return load ? settings.load_release_centi() : settings.sessions_release();
  return default_release(load ? from->load_centi : from->sessions);
}

}  // namespace

VhostLimits vhost_limits(const snapshot::Payload& payload, const ServerSettings& settings) noexcept {
  VhostLimits limits;
  const snapshot::ThresholdSet* vhost_override =
      payload.vhost_override_count == 0
          ? nullptr
          : find_vhost_override(payload, settings.vhost_hash, std::string_view(settings.vhost_name));
  limits.effective = resolve_thresholds(payload, vhost_override, settings.thresholds);
  if (settings.saturation_thresholds) limits.effective.saturation = &*settings.saturation_thresholds;
  limits.sessions_release = release_of(limits.effective.sessions_from, settings, false);
  limits.load_release_centi = release_of(limits.effective.load_from, settings, true);
  return limits;
}

namespace {

Evaluation evaluate(const snapshot::Payload& payload, const ServerSettings& settings) noexcept {
  Evaluation result;
  result.cut = (payload.flags & snapshot::kFlagCutActive) != 0;
  result.sessions_known = snapshot::sessions_known(payload);
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
  out.saturation_high = evaluation.check.saturation_high;
  out.sessions_known = evaluation.sessions_known;

  ExportInputs inputs;
  inputs.payload = &payload;
  inputs.thresholds = evaluation.effective;
  inputs.directive = &settings.thresholds;
  std::size_t size = 0;
  out.present = 0;
  out.all_lasting = true;
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    out.offsets[row] = static_cast<std::uint8_t>(size);
    out.lasting[row] = nullptr;
    const ExportedVariable& variable = kExportedVariables[row];
    const ExportText text = varies_per_request(variable.source) ? ExportText{} : text_of(variable, inputs);
    if (text.text != nullptr) {
      const std::size_t length = ::strnlen(text.text, snapshot::kTextCapacity - 1);
      std::memcpy(out.texts + size, text.text, length);
      size += length;
      out.present = static_cast<std::uint16_t>(out.present | bit_of(row));
      // The directive's thresholds live in the settings; the snapshot's
      // numbers have a static text when they are common.
      out.lasting[row] = text.lasting ? text.text : static_number_text(text.text);
      out.all_lasting = out.all_lasting && out.lasting[row] != nullptr;
    }
    out.texts[size++] = '\0';
  }
  out.texts_size = static_cast<std::uint8_t>(size);
  fill_probe_tail(payload, out.tail);
  out.state_flags = static_cast<std::uint8_t>(
      state_code(Verdict::ok, out.cut, false, out.sessions_high, out.load_high, out.sessions_known));
  out.settings = &settings;
  out.generation = view.generation;
  out.sequence = view.sequence;
  out.revision = ++view.revisions;
}

template <std::size_t N>
void copy_text(char (&destination)[N], const char* source) noexcept {
  const std::size_t length = ::strnlen(source, N - 1);
  std::memcpy(destination, source, length);
  destination[length] = '\0';
}

}  // namespace

SnapshotSource::~SnapshotSource() {
  // current_mapping_ unmaps its file: the SIGBUS handler must forget it
  // first. Retired mappings stay mapped; they are read no more.
  fault_guard::remove_repairable(current_mapping_.file());
  for (const snapshot::SnapshotFile* file : retired_) fault_guard::remove_repairable(file);
}

void SnapshotSource::open(const char* path) noexcept {
  const std::size_t length = ::strnlen(path, sizeof path_ - 1);
  std::memcpy(path_, path, length);
  path_[length] = '\0';
  next_reopen_ns_.store(0, std::memory_order_relaxed);
  fault_guard::install();
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
  // Anyone who can write the file could make every vhost trip or be cut:
  // such a file is not used (fail open; kModuleSnapshotUnusable says why, once).
  if ((mapping->mode() & (S_IWGRP | S_IWOTH)) != 0) {
    last_error_.store(snapshot::ReadError::untrusted, std::memory_order_relaxed);
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
      if (fault_guard::map_zeros_over(retired_.front())) fault_guard::remove_repairable(retired_.front());
      retired_.erase(retired_.begin());
    }
  } catch (...) {
    // Out of memory for the list: keep the old mapping (a small leak) rather
    // than unmap memory another thread may be reading.
  }
  current_mapping_ = std::move(*mapping);
  fault_guard::add_repairable(current_mapping_.file());
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
                                       trip_reasons(values.sessions_high, values.load_high, values.saturation_high));
  }
  const Verdict verdict = verdict_of(values.cut, tripped);
  const std::uint64_t age = age_ns / 1'000'000'000ULL;
  FreshRequest& out = values.last;
  out.values = &values;
  out.age_seconds = age;
  out.age_text = static_unsigned_text(age);
  out.stamp = out.age_text != nullptr ? values.revision << 16U | age << 2U | static_cast<std::uint64_t>(verdict)
                                      : kNoStamp;
  out.state = values.state_flags | state_code(verdict, false, tripped, false, false, true);
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

// Reads the current file (re-opening it when missing or stale, once): its
// health and the heartbeat's age.
SnapshotSource::Refreshed SnapshotSource::refresh(const ServerSettings& settings, std::uint64_t now_ns) noexcept {
  const snapshot::SnapshotFile* file = current_.load(std::memory_order_acquire);
  if (file == nullptr && reopen_if_due(now_ns)) file = current_.load(std::memory_order_acquire);
  ThreadView& view = this_thread_view();
  Refreshed result;
  for (int round = 0; file != nullptr && round < 2; ++round) {
    const std::uint64_t generation = generation_.load(std::memory_order_relaxed);
    std::uint64_t heartbeat = 0;
    // A fault, under the guard or repaired since (its pages are zeros now):
    // truncated under us, re-open once the helper re-creates it.
    if (!guarded_refresh(view, *file, generation, &heartbeat) ||
        (heartbeat == 0 && fault_guard::repair_state(file) == fault_guard::Repair::repaired)) {
      abandon(file);
      return Refreshed{};
    }
    result.age_ns = now_ns > heartbeat ? now_ns - heartbeat : 0;
    result.has_age = view.valid;
    result.health =
        view.valid && heartbeat != 0 && result.age_ns <= settings.max_age_ns() ? Health::fresh : Health::stale;
    if (result.health == Health::fresh) {
      // From now on compute_fresh() serves this file, as long as it stays fresh.
      if (fault_guard::repair_state(file) == fault_guard::Repair::repairable) result.fresh_file = file;
      return result;
    }
    if (round == 1 || !reopen_if_due(now_ns)) return result;
    file = current_.load(std::memory_order_acquire);  // replaced: try the new file once
  }
  return result;
}

void SnapshotSource::compute(const ServerSettings& settings, std::uint64_t now_ns, RequestValues& out,
                             Transition* transition, SharedState* shared) noexcept {
  const Refreshed refreshed = refresh(settings, now_ns);
  out.health = refreshed.health;

  ExportInputs inputs;
  inputs.directive = &settings.thresholds;
  char age[snapshot::kTextCapacity] = {};
  if (refreshed.has_age) {
    render_unsigned(age, sizeof age, refreshed.age_ns / 1'000'000'000ULL);
    inputs.age = age;
  }
  if (refreshed.health == Health::fresh) {
    const snapshot::Payload& payload = this_thread_view().payload();
    const Evaluation evaluation = evaluate(payload, settings);
    inputs.payload = &payload;
    inputs.thresholds = evaluation.effective;
    fill_probe_tail(payload, out.tail);
    out.cut = evaluation.cut;
    out.tripped = shared != nullptr ? shared->update(settings.verdict_slot, evaluation.check.over,
                                                     evaluation.check.under, now_ns, settings.hold_ns(),
                                                     trip_reasons(evaluation.check.sessions_high,
                                                                  evaluation.check.load_high,
                                                                  evaluation.check.saturation_high))
                                    : evaluation.check.over;
    out.sessions_high = evaluation.check.sessions_high;
    out.load_high = evaluation.check.load_high;
    out.sessions_known = evaluation.sessions_known;
    out.verdict = verdict_of(out.cut, out.tripped);
  } else {
    // No value is invented: only the vhost's own configuration is exported.
    out.cut = false;
    out.tripped = false;
    out.sessions_high = false;
    out.load_high = false;
    out.sessions_known = true;
    if (settings.thresholds.has_sessions != 0) inputs.thresholds.sessions_from = &settings.thresholds;
    if (settings.thresholds.has_load != 0) inputs.thresholds.load_from = &settings.thresholds;
    out.verdict = Verdict::inconnu;
    out.tail.count = 0;
  }
  inputs.verdict = out.verdict;
  out.present = 0;
  for (std::size_t row = 0; row < kVariableCount; ++row) {
    const ExportText text = text_of(kExportedVariables[row], inputs);
    if (text.text == nullptr) continue;
    copy_text(out.text[row], text.text);
    out.lasting[row] = text.lasting ? text.text : nullptr;
    out.present = static_cast<std::uint16_t>(out.present | bit_of(row));
  }

  const Transition seen = note_health(refreshed.health);
  if (transition != nullptr) *transition = seen;
  fresh_file_.store(refreshed.fresh_file, std::memory_order_release);
}

}  // namespace coupecircuit::module
