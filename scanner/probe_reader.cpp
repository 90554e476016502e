#include "probe_reader.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "decimal.hpp"
#include "log.hpp"
#include "snapshot.hpp"

namespace coupecircuit {
namespace {

constexpr std::int64_t kInvalidLogGapMs = 60'000;

std::uint32_t entry_flags(const probes::ProbeResult& probe, bool stale) noexcept {
  std::uint32_t flags = probe.critical ? snapshot::kProbeCritical : 0U;
  // A saturation is a measurement only while the probe answers.
  if (!stale && probe.status == probes::ProbeStatus::up && probe.saturation_pct) flags |= snapshot::kProbeHasSaturation;
  return flags;
}

std::uint32_t entry_status(probes::ProbeStatus status, bool stale) noexcept {
  if (stale) return snapshot::kProbeUnknown;
  switch (status) {
    case probes::ProbeStatus::up:
      return snapshot::kProbeUp;
    case probes::ProbeStatus::down:
      return snapshot::kProbeDown;
    case probes::ProbeStatus::unknown:
      return snapshot::kProbeUnknown;
  }
  return snapshot::kProbeUnknown;
}

}  // namespace

void fill_probe_table(bool configured, const probes::ProbeResults* results, std::int64_t now_wall_ms,
                      snapshot::Payload& payload) noexcept {
  payload.probe_flags = 0;
  payload.probe_count = 0;
  payload.probes_updated_wall_s = 0;
  std::memset(payload.probes_down_text, 0, sizeof payload.probes_down_text);
  for (auto& entry : payload.probes) entry = snapshot::ProbeEntry{};
  if (!configured) return;
  payload.probe_flags = snapshot::kProbesConfigured;
  const bool stale = results == nullptr || probes::results_are_stale(*results, now_wall_ms);
  if (stale) payload.probe_flags |= snapshot::kProbesStale;
  if (results == nullptr) return;
  payload.probes_updated_wall_s = results->written_wall_ms / 1000;
  std::size_t down_length = 0;
  for (const auto& probe : results->probes) {
    if (payload.probe_count == snapshot::kMaxProbes) break;
    auto& entry = payload.probes[payload.probe_count++];
    snapshot::copy_text(entry.name, probe.name);
    entry.status = entry_status(probe.status, stale);
    entry.flags = entry_flags(probe, stale);
    entry.since_wall_s = probe.since_wall_s;
    entry.latency_us = probe.latency_us;
    if ((entry.flags & snapshot::kProbeHasSaturation) != 0) {
      entry.saturation_pct = *probe.saturation_pct;
      render_unsigned(entry.saturation_text, sizeof entry.saturation_text, entry.saturation_pct);
    }
    snapshot::copy_text(entry.last_error, probe.error);
    if (entry.status != snapshot::kProbeDown) continue;
    if (probe.critical) payload.probe_flags |= snapshot::kProbesCriticalDown;
    // 16 names of at most 31 bytes and their commas always fit.
    const std::size_t length = probe.name.size() + (down_length > 0 ? 1 : 0);
    if (down_length + length >= sizeof payload.probes_down_text) continue;
    if (down_length > 0) payload.probes_down_text[down_length++] = ',';
    std::memcpy(payload.probes_down_text + down_length, probe.name.data(), probe.name.size());
    down_length += probe.name.size();
  }
}

void ProbeResultsReader::configure(bool configured, const std::string& path) {
  if (path != path_) {
    results_.reset();
    identity_ = FileIdentity{};
  }
  configured_ = configured;
  path_ = path;
}

void ProbeResultsReader::read_file() {
  auto results = probes::read_probe_results_file(path_);
  if (results) {
    results_ = std::move(*results);
    return;
  }
  // Missing: nothing new (freshness tells the rest). Anything else: ignored.
  if (results.error().code != ENOENT) pending_invalid_ = results.error().message;
}

void ProbeResultsReader::report_invalid(const std::string& why, std::int64_t now_wall_ms) {
  if (last_invalid_log_ms_ != 0 && now_wall_ms - last_invalid_log_ms_ < kInvalidLogGapMs &&
      now_wall_ms >= last_invalid_log_ms_) {
    ++invalid_unlogged_;
    return;
  }
  std::string text = why + " (ignored, " + (results_ ? "the last valid results are kept" : "probes unknown") + ")";
  if (invalid_unlogged_ > 0) text += "; " + std::to_string(invalid_unlogged_) + " more invalid file(s) not logged";
  log::warning(log::id::kProbeResultsInvalid, text);
  last_invalid_log_ms_ = now_wall_ms;
  invalid_unlogged_ = 0;
}

void ProbeResultsReader::refresh(std::int64_t now_wall_ms) {
  if (!configured_) return;
  const FileIdentity now = identity_of(path_);
  if (now != identity_) {
    identity_ = now;
    if (now.exists) read_file();
  }
  if (!pending_invalid_.empty()) {
    report_invalid(pending_invalid_, now_wall_ms);
    pending_invalid_.clear();
  }
  const bool stale = !results_ || probes::results_are_stale(*results_, now_wall_ms);
  if (stale_logged_ && stale == stale_) return;
  if (stale) {
    const std::string why = !results_ ? (identity_.exists ? "no valid probe results in " : "no probe results file ")
                                      : "probe results too old in ";
    log::warning(log::id::kProbeResultsStale, why + path_ + ": every probe unknown");
  } else if (stale_logged_) {
    log::notice(log::id::kProbeResultsFresh, "fresh probe results in " + path_);
  }
  stale_ = stale;
  stale_logged_ = true;
}

void ProbeResultsReader::fill(snapshot::Payload& payload, std::int64_t now_wall_ms) const noexcept {
  fill_probe_table(configured_, results_ ? &*results_ : nullptr, now_wall_ms, payload);
}

}  // namespace coupecircuit
