// mod_coupecircuit's configuration, without httpd types: the per-server and
// per-directory settings, their defaults (one table) and merge rules (one
// merge per level), and the directive value parsers. The directive table
// (directives.cpp) only wires these to httpd.
//
// One pattern for every setting: a directive sets a std::optional; an unset
// one inherits its parent's on merge; the accessor gives kDefaults' value
// when no level set it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "exported_variables.hpp"
#include "result.hpp"
#include "snapshot_layout.hpp"
#include "thresholds.hpp"

namespace coupecircuit::module {

enum class Action : std::uint8_t { none, refuse_new, refuse_all };

// The default of every setting no directive sets.
struct SettingDefaults {
  bool enabled = true;
  std::uint64_t max_age_seconds = 10;
  std::uint64_t hold_seconds = 30;
  const char* snapshot_path = snapshot::kDefaultPath;
  Action action = Action::none;
  int shed_status = 503;
  const char* session_cookie = "PHPSESSID";
  // No default: Retry-After (no header), the error document (Apache's
  // ErrorDocument), the health token (none asked), the exemptions (none).
};
inline constexpr SettingDefaults kDefaults{};

inline constexpr std::uint64_t kMaxMaxAgeSeconds = 86400;

// One CoupeCircuitThreshold line, parsed.
struct ThresholdDirective {
  bool is_load = false;       // else sessions (or saturation)
  bool is_saturation = false;  // saturation:NAME, in integer percent
  char probe[snapshot::kProbeNameCapacity] = {};
  std::uint64_t trip = 0;     // sessions, or load centi
  std::uint64_t release = 0;  // < trip; default 90 % of trip
  bool release_given = false;
};

// The child's value where it has one, else the parent's.
template <typename T>
void inherit(std::optional<T>& child, const std::optional<T>& parent) noexcept {
  if (!child.has_value()) child = parent;
}

// Per-server (vhost) configuration.
struct ServerSettings {
  // Set by directives.
  std::optional<bool> enabled;
  std::optional<std::uint64_t> max_age_seconds;
  std::optional<std::uint64_t> hold_seconds;
  std::optional<ThresholdDirective> sessions_threshold;
  std::optional<ThresholdDirective> load_threshold;
  std::optional<SaturationLimits> saturation_thresholds;  // one per probe named, replaced as a whole on merge
  std::array<std::optional<const char*>, kVariableCount> env_names{};
  std::optional<const char*> snapshot_path;  // main server only

  // Worked out once merged (finish_settings(), post_config).
  snapshot::ThresholdSet thresholds{};  // the directive thresholds, pre-rendered
  std::uint64_t vhost_hash = 0;         // this vhost's name for runtime overrides
  char vhost_name[snapshot::kVhostNameCapacity] = {};
  int verdict_slot = -1;         // this vhost's hysteresis slot in the shared block
  std::uint32_t cache_slot = 0;  // where each thread keeps this vhost's FreshValues

  [[nodiscard]] bool is_enabled() const noexcept { return enabled.value_or(kDefaults.enabled); }
  [[nodiscard]] std::uint64_t max_age_ns() const noexcept {
    return max_age_seconds.value_or(kDefaults.max_age_seconds) * 1'000'000'000ULL;
  }
  [[nodiscard]] std::uint64_t hold_ns() const noexcept {
    return hold_seconds.value_or(kDefaults.hold_seconds) * 1'000'000'000ULL;
  }
  [[nodiscard]] const char* env_name(std::size_t index) const noexcept {
    return env_names[index].value_or(kExportedVariables[index].default_env_name);
  }
  [[nodiscard]] const char* env_name(Variable variable) const noexcept {
    return env_name(static_cast<std::size_t>(variable));
  }
  [[nodiscard]] const char* snapshot_path_or_default() const noexcept {
    return snapshot_path.value_or(kDefaults.snapshot_path);
  }
  [[nodiscard]] std::uint64_t sessions_release() const noexcept {
    return sessions_threshold ? sessions_threshold->release : 0;
  }
  [[nodiscard]] std::uint64_t load_release_centi() const noexcept {
    return load_threshold ? load_threshold->release : 0;
  }
};

// child inherits every setting it does not set itself.
[[nodiscard]] ServerSettings merge_settings(const ServerSettings& parent, const ServerSettings& child) noexcept;
// Renders the directive thresholds and stores the lowercase vhost name and
// its hash (for the snapshot's overrides): once merged, before any request.
void finish_settings(ServerSettings& settings, std::string_view server_hostname) noexcept;

// CoupeCircuitExempt: a path prefix or a regular expression (compiled by
// httpd: opaque here, matched by the caller's function).
struct ExemptRule {
  const char* prefix = nullptr;
  const void* regex = nullptr;
};

// Per-directory settings (enforcement, health).
struct DirSettings {
  std::optional<Action> action;
  std::optional<int> shed_status;
  std::optional<std::uint64_t> retry_after;   // none: no Retry-After header
  std::optional<const char*> session_cookie;
  std::optional<const char*> error_body;      // CoupeCircuitErrorDocument's content, read at start
  std::optional<const char*> health_token;
  std::span<const ExemptRule> exempt;         // accumulated from outer to inner

  [[nodiscard]] Action action_or_default() const noexcept { return action.value_or(kDefaults.action); }
  [[nodiscard]] bool refuses() const noexcept { return action_or_default() != Action::none; }
  [[nodiscard]] int shed_status_or_default() const noexcept { return shed_status.value_or(kDefaults.shed_status); }
  [[nodiscard]] const char* session_cookie_or_default() const noexcept {
    return session_cookie.value_or(kDefaults.session_cookie);
  }
};

// child inherits every setting it does not set itself; exemptions add up.
// allocate(n) returns room for n rules that lives as long as the settings.
template <typename Allocate>
[[nodiscard]] DirSettings merge_dir_settings(const DirSettings& parent, const DirSettings& child, Allocate allocate) {
  DirSettings merged = child;
  inherit(merged.action, parent.action);
  inherit(merged.shed_status, parent.shed_status);
  inherit(merged.retry_after, parent.retry_after);
  inherit(merged.session_cookie, parent.session_cookie);
  inherit(merged.error_body, parent.error_body);
  inherit(merged.health_token, parent.health_token);
  if (!parent.exempt.empty() && !child.exempt.empty()) {
    ExemptRule* rules = allocate(parent.exempt.size() + child.exempt.size());
    std::size_t count = 0;
    for (const ExemptRule& rule : parent.exempt) rules[count++] = rule;
    for (const ExemptRule& rule : child.exempt) rules[count++] = rule;
    merged.exempt = {rules, count};
  } else if (child.exempt.empty()) {
    merged.exempt = parent.exempt;
  }
  return merged;
}

// Directive value parsers. Error messages start with the directive name.
[[nodiscard]] Result<bool> parse_on_off(std::string_view directive, std::string_view value);
[[nodiscard]] Result<std::uint64_t> parse_max_age(std::string_view value);
[[nodiscard]] Result<std::uint64_t> parse_hold(std::string_view value);
// RELEASE of a threshold given without one (runtime overrides): 90 % of TRIP.
[[nodiscard]] constexpr std::uint64_t default_release(std::uint64_t trip) noexcept { return trip - (trip + 9) / 10; }
[[nodiscard]] Result<ThresholdDirective> parse_threshold(std::string_view kind, std::string_view trip,
                                                         std::string_view release /* empty: none */);
void apply_threshold(ServerSettings& settings, const ThresholdDirective& threshold) noexcept;
[[nodiscard]] Result<Variable> parse_logical_name(std::string_view logical);
[[nodiscard]] Result<void> validate_env_name(std::string_view name);
[[nodiscard]] Result<void> validate_snapshot_path(std::string_view path);
[[nodiscard]] Result<Action> parse_action(std::string_view value);
[[nodiscard]] Result<int> parse_shed_status(std::string_view value);
[[nodiscard]] Result<std::uint64_t> parse_retry_after(std::string_view value);
[[nodiscard]] Result<void> validate_cookie_name(std::string_view name);
[[nodiscard]] Result<void> validate_health_token(std::string_view token);

}  // namespace coupecircuit::module
