#include "thresholds.hpp"

#include <cstring>

namespace coupecircuit {

std::string_view to_string(Verdict verdict) noexcept {
  switch (verdict) {
    case Verdict::ok: return "ok";
    case Verdict::surcharge: return "surcharge";
    case Verdict::coupure: return "coupure";
    case Verdict::inconnu: return "inconnu";
  }
  return "inconnu";
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

Verdict compute_verdict(const snapshot::Payload& payload, const EffectiveThresholds& thresholds) noexcept {
  if ((payload.flags & snapshot::kFlagCutActive) != 0) return Verdict::coupure;
  if (thresholds.sessions_from != nullptr && payload.sessions_active >= thresholds.sessions_from->sessions) {
    return Verdict::surcharge;
  }
  if (thresholds.load_from != nullptr && payload.load_centi[0] >= thresholds.load_from->load_centi) {
    return Verdict::surcharge;
  }
  return Verdict::ok;
}

ThresholdCheck check_thresholds(const snapshot::Payload& payload, const EffectiveThresholds& thresholds,
                                std::uint64_t sessions_release, std::uint64_t load_release) noexcept {
  ThresholdCheck check;
  if (thresholds.sessions_from != nullptr) {
    check.over = check.over || payload.sessions_active >= thresholds.sessions_from->sessions;
    check.sessions_high = payload.sessions_active > sessions_release;
  }
  if (thresholds.load_from != nullptr) {
    check.over = check.over || payload.load_centi[0] >= thresholds.load_from->load_centi;
    check.load_high = payload.load_centi[0] > load_release;
  }
  check.under = !check.sessions_high && !check.load_high;
  return check;
}

}  // namespace coupecircuit
