// Effective thresholds of a vhost and the verdict exported as
// COUPECIRCUIT_ETAT. Precedence, per threshold: the snapshot's runtime
// override for this vhost, else the snapshot's global override, else the
// vhost's CoupeCircuitThreshold directive.
#pragma once

#include <cstdint>
#include <string_view>

#include "snapshot_layout.hpp"

namespace coupecircuit {

enum class Verdict : std::uint8_t { ok, surcharge, coupure, inconnu };
[[nodiscard]] std::string_view to_string(Verdict verdict) noexcept;

struct EffectiveThresholds {
  const snapshot::ThresholdSet* sessions_from = nullptr;  // the set holding the sessions threshold, or null
  const snapshot::ThresholdSet* load_from = nullptr;
};

// Finds this vhost's override entry in a payload copy (name lowercase).
[[nodiscard]] const snapshot::ThresholdSet* find_vhost_override(const snapshot::Payload& payload,
                                                                 std::uint64_t name_hash,
                                                                 std::string_view name) noexcept;

[[nodiscard]] EffectiveThresholds resolve_thresholds(const snapshot::Payload& payload,
                                                     const snapshot::ThresholdSet* vhost_override,
                                                     const snapshot::ThresholdSet& directive) noexcept;

// A threshold is reached when the value is greater than or equal to it.
// Without hysteresis: coupure, surcharge or ok.
[[nodiscard]] Verdict compute_verdict(const snapshot::Payload& payload, const EffectiveThresholds& thresholds) noexcept;

// Inputs of the hysteresis: a value reached its TRIP (over), every value is at
// or below its RELEASE (under), and which values are above their RELEASE.
struct ThresholdCheck {
  bool over = false;
  bool under = true;
  bool sessions_high = false;
  bool load_high = false;
};
[[nodiscard]] ThresholdCheck check_thresholds(const snapshot::Payload& payload, const EffectiveThresholds& thresholds,
                                              std::uint64_t sessions_release, std::uint64_t load_release) noexcept;

}  // namespace coupecircuit
