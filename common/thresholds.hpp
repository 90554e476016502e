// Effective thresholds of a vhost and the verdict exported as
// COUPECIRCUIT_ETAT. Precedence, per threshold: the snapshot's runtime
// override for this vhost, else the snapshot's global override, else the
// vhost's CoupeCircuitThreshold directive.
#pragma once

#include <cstdint>
#include <string_view>

#include "result.hpp"
#include "snapshot_layout.hpp"
#include "text.hpp"

namespace coupecircuit {

// ---- The one rule for a threshold value (TRIP), shared by the directive
// CoupeCircuitThreshold, coupecircuitd.conf's [agent] sessions / load,
// `coupecircuitctl threshold set` and the state file: sessions an integer
// from 1 to kMaxSessionsValue, load a number with at most two decimals from
// 0.01 to kMaxLoadCenti / 100. Zero is refused everywhere: a threshold of 0 is
// always reached, so the vhost would never leave the tripped state.
enum class ThresholdKind : std::uint8_t { sessions, load };
// "sessions" or "load", in any case (Apache directives are case-insensitive).
[[nodiscard]] Result<ThresholdKind> parse_threshold_kind(std::string_view text);
[[nodiscard]] std::string_view to_string(ThresholdKind kind) noexcept;
// A number of the kind's syntax, without the lower bound (a RELEASE may be 0).
[[nodiscard]] Result<std::uint64_t> parse_threshold_number(ThresholdKind kind, std::string_view text);
// A TRIP value: the syntax and the bounds above.
[[nodiscard]] Result<std::uint64_t> parse_threshold_value(ThresholdKind kind, std::string_view text);
// The bounds alone, for a value already parsed (a JSON number).
[[nodiscard]] Result<void> check_threshold_value(ThresholdKind kind, std::uint64_t value);

enum class Verdict : std::uint8_t { ok, surcharge, coupure, inconnu };
// The verdict's word, as exported (COUPECIRCUIT_ETAT) and shown: a
// NUL-terminated literal.
[[nodiscard]] constexpr const char* verdict_word(Verdict verdict) noexcept {
  constexpr const char* kWords[] = {"ok", "surcharge", "coupure", "inconnu"};
  return enum_name(verdict, kWords, "inconnu");
}
[[nodiscard]] std::string_view to_string(Verdict verdict) noexcept;

// The one verdict rule, for a fresh snapshot: the manual cut first, then
// whether the thresholds tripped (with or without hysteresis).
[[nodiscard]] constexpr Verdict verdict_of(bool cut, bool tripped) noexcept {
  return cut ? Verdict::coupure : tripped ? Verdict::surcharge : Verdict::ok;
}

// Saturation thresholds of dependency probes (CoupeCircuitThreshold
// saturation:NAME TRIP [RELEASE]), in integer percent.
struct SaturationLimit {
  char probe[snapshot::kProbeNameCapacity] = {};
  std::uint32_t trip_pct = 0;
  std::uint32_t release_pct = 0;  // < trip_pct
};
struct SaturationLimits {
  std::uint32_t count = 0;
  SaturationLimit limit[snapshot::kMaxProbes];
};

struct EffectiveThresholds {
  const snapshot::ThresholdSet* sessions_from = nullptr;  // the set holding the sessions threshold, or null
  const snapshot::ThresholdSet* load_from = nullptr;
  const SaturationLimits* saturation = nullptr;  // the vhost's directive ones, or null
};

// Finds this vhost's override entry in a payload copy (name lowercase).
[[nodiscard]] const snapshot::ThresholdSet* find_vhost_override(const snapshot::Payload& payload,
                                                                std::uint64_t name_hash,
                                                                std::string_view name) noexcept;

[[nodiscard]] EffectiveThresholds resolve_thresholds(const snapshot::Payload& payload,
                                                     const snapshot::ThresholdSet* vhost_override,
                                                     const snapshot::ThresholdSet& directive) noexcept;

// A threshold is reached when the value is greater than or equal to it.
// Without hysteresis: coupure, surcharge or ok. While the sessions are not
// known (snapshot::sessions_known false) the sessions threshold is not judged.
[[nodiscard]] Verdict compute_verdict(const snapshot::Payload& payload, const EffectiveThresholds& thresholds) noexcept;

// Inputs of the hysteresis: a value reached its TRIP (over), every value is at
// or below its RELEASE (under), and which values are above their RELEASE.
// While the sessions are not known, the sessions threshold neither trips nor
// releases: it never sets `over`, and counts as high (so `under` stays false).
// The same for a saturation threshold whose probe is down or unknown, or whose
// results are stale (fail open: a probe fault never trips a vhost).
struct ThresholdCheck {
  bool over = false;
  bool under = true;
  bool sessions_high = false;
  bool load_high = false;
  bool saturation_high = false;
};
[[nodiscard]] ThresholdCheck check_thresholds(const snapshot::Payload& payload, const EffectiveThresholds& thresholds,
                                              std::uint64_t sessions_release, std::uint64_t load_release) noexcept;

}  // namespace coupecircuit
