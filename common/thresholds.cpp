#include "thresholds.hpp"

#include <cstring>
#include <string>

#include "decimal.hpp"
#include "snapshot.hpp"
#include "text.hpp"

namespace coupecircuit {

Result<ThresholdKind> parse_threshold_kind(std::string_view text) {
  if (equals_ignoring_case(text, "sessions")) return ThresholdKind::sessions;
  if (equals_ignoring_case(text, "load")) return ThresholdKind::load;
  std::string message = "expected sessions or load, got \"";
  message.append(text);
  message += '"';
  return make_error(std::move(message));
}

std::string_view to_string(ThresholdKind kind) noexcept {
  return kind == ThresholdKind::load ? "load" : "sessions";
}

Result<std::uint64_t> parse_threshold_number(ThresholdKind kind, std::string_view text) {
  return kind == ThresholdKind::load ? parse_centi(text, kMaxLoadCenti) : parse_unsigned(text, kMaxSessionsValue);
}

Result<void> check_threshold_value(ThresholdKind kind, std::uint64_t value) {
  const std::uint64_t max = kind == ThresholdKind::load ? kMaxLoadCenti : kMaxSessionsValue;
  if (value == 0) return make_error(std::string(to_string(kind)) + " threshold must be greater than 0");
  if (value > max) {
    return make_error(std::string(to_string(kind)) + " threshold is too large (maximum " +
                      (kind == ThresholdKind::load ? centi_to_string(max) : std::to_string(max)) + ")");
  }
  return {};
}

Result<std::uint64_t> parse_threshold_value(ThresholdKind kind, std::string_view text) {
  auto value = parse_threshold_number(kind, text);
  if (!value) return value;
  if (auto valid = check_threshold_value(kind, *value); !valid) return valid.error();
  return value;
}

std::string_view to_string(Verdict verdict) noexcept {
  return verdict_word(verdict);
}

const snapshot::ThresholdSet* find_vhost_override(const snapshot::Payload& payload, std::uint64_t name_hash,
                                                  std::string_view name) noexcept {
  std::uint32_t count = payload.vhost_override_count;
  if (count > snapshot::kMaxVhostOverrides) count = snapshot::kMaxVhostOverrides;
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto& entry = payload.vhost_overrides[i];
    if (entry.name_hash != name_hash) continue;
    const std::size_t length = ::strnlen(entry.name, sizeof entry.name);
    if (length == name.size() && std::memcmp(entry.name, name.data(), length) == 0) return &entry.thresholds;
  }
  return nullptr;
}

EffectiveThresholds resolve_thresholds(const snapshot::Payload& payload, const snapshot::ThresholdSet* vhost_override,
                                       const snapshot::ThresholdSet& directive) noexcept {
  EffectiveThresholds result;
  const snapshot::ThresholdSet* layers[] = {vhost_override, &payload.global_override, &directive};
  for (const auto* layer : layers) {
    if (layer == nullptr) continue;
    if (result.sessions_from == nullptr && layer->has_sessions != 0) result.sessions_from = layer;
    if (result.load_from == nullptr && layer->has_load != 0) result.load_from = layer;
  }
  return result;
}

namespace {

// The measured saturation of a probe, or null: not in the table, down,
// unknown, stale, or not measured.
const snapshot::ProbeEntry* measured_probe(const snapshot::Payload& payload, const char* name) noexcept {
  const bool fresh = (payload.probe_flags & snapshot::kProbesConfigured) != 0 &&
                     (payload.probe_flags & snapshot::kProbesStale) == 0;
  if (!fresh) return nullptr;
  const std::uint32_t count = payload.probe_count < snapshot::kMaxProbes ? payload.probe_count
                                                                          : static_cast<std::uint32_t>(snapshot::kMaxProbes);
  for (std::uint32_t i = 0; i < count; ++i) {
    const auto& entry = payload.probes[i];
    if (std::strncmp(entry.name, name, snapshot::kProbeNameCapacity) != 0) continue;
    const bool measured = entry.status == snapshot::kProbeUp && (entry.flags & snapshot::kProbeHasSaturation) != 0;
    return measured ? &entry : nullptr;
  }
  return nullptr;
}

void check_saturation(const snapshot::Payload& payload, const SaturationLimits& limits, ThresholdCheck& check) noexcept {
  for (std::uint32_t i = 0; i < limits.count && i < snapshot::kMaxProbes; ++i) {
    const SaturationLimit& limit = limits.limit[i];
    const snapshot::ProbeEntry* probe = measured_probe(payload, limit.probe);
    check.over = check.over || (probe != nullptr && probe->saturation_pct >= limit.trip_pct);
    check.saturation_high = check.saturation_high || probe == nullptr || probe->saturation_pct > limit.release_pct;
  }
}

}  // namespace

Verdict compute_verdict(const snapshot::Payload& payload, const EffectiveThresholds& thresholds) noexcept {
  return verdict_of((payload.flags & snapshot::kFlagCutActive) != 0, check_thresholds(payload, thresholds, 0, 0).over);
}

ThresholdCheck check_thresholds(const snapshot::Payload& payload, const EffectiveThresholds& thresholds,
                                std::uint64_t sessions_release, std::uint64_t load_release) noexcept {
  ThresholdCheck check;
  if (thresholds.sessions_from != nullptr) {
    const bool known = snapshot::sessions_known(payload);
    check.over = check.over || (known && payload.sessions_active >= thresholds.sessions_from->sessions);
    check.sessions_high = !known || payload.sessions_active > sessions_release;
  }
  if (thresholds.load_from != nullptr) {
    check.over = check.over || payload.load_centi[0] >= thresholds.load_from->load_centi;
    check.load_high = payload.load_centi[0] > load_release;
  }
  if (thresholds.saturation != nullptr) check_saturation(payload, *thresholds.saturation, check);
  check.under = !check.sessions_high && !check.load_high && !check.saturation_high;
  return check;
}

}  // namespace coupecircuit
