// mod_coupecircuit's configuration, without httpd types: directive value
// parsers, the per-server config with its defaults and merge rules, and the
// names of the exported variables. mod_coupecircuit.cpp only wires these to
// httpd's command table.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "result.hpp"
#include "snapshot_layout.hpp"

namespace coupecircuit::module {

// The exported variables, by logical name.
enum class Variable : std::uint8_t { load_avg, sessions_actives, coupure, seuil_sessions, seuil_load, etat, age };
inline constexpr std::size_t kVariableCount = 7;
inline constexpr std::array<std::string_view, kVariableCount> kLogicalNames = {
    "load_avg", "sessions_actives", "coupure", "seuil_sessions", "seuil_load", "etat", "age"};
inline constexpr std::array<const char*, kVariableCount> kDefaultEnvNames = {
    "LOAD_AVG", "SESSIONS_ACTIVES", "COUPURE_CHARGE_SERVEUR", "SEUIL_SESSIONS_ACTIVES", "SEUIL_LOAD_AVG",
    "COUPECIRCUIT_ETAT", "COUPECIRCUIT_AGE"};

inline constexpr std::uint64_t kDefaultMaxAgeSeconds = 10;
inline constexpr std::uint64_t kDefaultHoldSeconds = 30;
inline constexpr std::uint64_t kMaxMaxAgeSeconds = 86400;

// One CoupeCircuitThreshold line, parsed.
struct ThresholdDirective {
  bool is_load = false;      // else sessions
  std::uint64_t trip = 0;    // sessions, or load centi
  std::uint64_t release = 0; // < trip; default 90 % of trip
  bool release_given = false;
};

// Per-server (vhost) configuration. "unset" fields inherit on merge.
struct ServerSettings {
  int enabled = -1;  // -1 unset (default On)
  std::uint64_t max_age_seconds = 0;
  bool max_age_set = false;
  std::uint64_t hold_seconds = 0;
  bool hold_set = false;
  snapshot::ThresholdSet thresholds{};  // directive thresholds, pre-rendered
  std::uint64_t sessions_release = 0;
  std::uint64_t load_release_centi = 0;
  std::array<const char*, kVariableCount> env_names{};  // null: unset (default name)
  const char* snapshot_path = nullptr;  // main server only; null: the default path
  // Filled after merge (post_config): this vhost's name for runtime overrides.
  std::uint64_t vhost_hash = 0;
  char vhost_name[snapshot::kVhostNameCapacity] = {};
  int verdict_slot = -1;  // this vhost's hysteresis slot in the shared block
  std::uint32_t cache_slot = 0;  // where each thread keeps this vhost's FreshValues

  [[nodiscard]] bool is_enabled() const noexcept { return enabled != 0; }
  [[nodiscard]] std::uint64_t max_age_ns() const noexcept {
    return (max_age_set ? max_age_seconds : kDefaultMaxAgeSeconds) * 1'000'000'000ULL;
  }
  [[nodiscard]] std::uint64_t hold_ns() const noexcept {
    return (hold_set ? hold_seconds : kDefaultHoldSeconds) * 1'000'000'000ULL;
  }
  [[nodiscard]] const char* env_name(Variable variable) const noexcept {
    const auto index = static_cast<std::size_t>(variable);
    return env_names[index] != nullptr ? env_names[index] : kDefaultEnvNames[index];
  }
};

// child inherits every field it does not set itself.
[[nodiscard]] ServerSettings merge_settings(const ServerSettings& parent, const ServerSettings& child) noexcept;

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

// Stores the lowercase vhost name and its hash (for the snapshot's overrides).
void set_vhost_identity(ServerSettings& settings, std::string_view server_hostname) noexcept;

}  // namespace coupecircuit::module
