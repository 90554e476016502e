#include "module_config.hpp"

#include <cstring>

#include "decimal.hpp"
#include "probe_results.hpp"
#include "text.hpp"
#include "snapshot.hpp"
#include "thresholds.hpp"

namespace coupecircuit::module {

ServerSettings merge_settings(const ServerSettings& parent, const ServerSettings& child) noexcept {
  ServerSettings merged = child;
  inherit(merged.enabled, parent.enabled);
  inherit(merged.max_age_seconds, parent.max_age_seconds);
  inherit(merged.hold_seconds, parent.hold_seconds);
  inherit(merged.sessions_threshold, parent.sessions_threshold);
  inherit(merged.load_threshold, parent.load_threshold);
  inherit(merged.saturation_thresholds, parent.saturation_thresholds);
  for (std::size_t i = 0; i < kVariableCount; ++i) inherit(merged.env_names[i], parent.env_names[i]);
  inherit(merged.snapshot_path, parent.snapshot_path);
  return merged;
}

void finish_settings(ServerSettings& settings, std::string_view server_hostname) noexcept {
  snapshot::ThresholdSet& set = settings.thresholds;
  set = snapshot::ThresholdSet{};
  if (settings.sessions_threshold) {
    set.has_sessions = 1;
    set.sessions = settings.sessions_threshold->trip;
    render_unsigned(set.sessions_text, sizeof set.sessions_text, set.sessions);
  }
  if (settings.load_threshold) {
    set.has_load = 1;
    set.load_centi = settings.load_threshold->trip;
    render_centi(set.load_text, sizeof set.load_text, set.load_centi);
  }
  std::size_t length = 0;
  for (const char c : server_hostname) {
    if (length + 1 >= sizeof settings.vhost_name) break;
    settings.vhost_name[length++] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }
  settings.vhost_name[length] = '\0';
  settings.vhost_hash = snapshot::vhost_name_hash(settings.vhost_name, length);
}

Result<bool> parse_on_off(std::string_view directive, std::string_view value) {
  if (equals_ignoring_case(value, "on")) return true;
  if (equals_ignoring_case(value, "off")) return false;
  return make_error(std::string(directive) + " must be On or Off, not " + quoted(value));
}

Result<std::uint64_t> parse_max_age(std::string_view value) {
  auto seconds = parse_unsigned(value, kMaxMaxAgeSeconds);
  if (!seconds || *seconds == 0) {
    return make_error("CoupeCircuitMaxAge takes a number of seconds from 1 to " + std::to_string(kMaxMaxAgeSeconds) +
                      ", not " + quoted(value));
  }
  return *seconds;
}

Result<std::uint64_t> parse_hold(std::string_view value) {
  auto seconds = parse_unsigned(value, kMaxMaxAgeSeconds);
  if (!seconds) {
    return make_error("CoupeCircuitHold takes a number of seconds from 0 to " + std::to_string(kMaxMaxAgeSeconds) +
                      ", not " + quoted(value));
  }
  return *seconds;
}

namespace {

constexpr std::string_view kSaturationKind = "saturation:";
constexpr std::uint64_t kMaxSaturationTrip = probes::kMaxSaturationPct;

// RELEASE of a threshold whose TRIP is set: 90 % of TRIP (always < TRIP)
// when not given, else `parsed` (the value of `release`), which must be
// lower than TRIP. The one rule for every kind of threshold.
template <typename Parsed>
Result<void> set_release(std::string_view kind, std::string_view trip, std::string_view release, const Parsed& parsed,
                         ThresholdDirective& result) {
  result.release = default_release(result.trip);
  if (release.empty()) return {};
  if (!parsed) return make_error("CoupeCircuitThreshold " + std::string(kind) + " RELEASE: " + parsed.error().message);
  if (*parsed >= result.trip) {
    return make_error("CoupeCircuitThreshold " + std::string(kind) + ": RELEASE " + quoted(release) +
                      " must be lower than TRIP " + quoted(trip));
  }
  result.release = *parsed;
  result.release_given = true;
  return {};
}

// CoupeCircuitThreshold saturation:NAME TRIP [RELEASE]: integer percent.
Result<ThresholdDirective> parse_saturation_threshold(std::string_view kind, std::string_view trip,
                                                      std::string_view release) {
  ThresholdDirective result;
  result.is_saturation = true;
  const std::string_view name = kind.substr(kSaturationKind.size());
  if (auto valid = probes::validate_probe_name(name); !valid) {
    return make_error("CoupeCircuitThreshold " + quoted(kind) + ": " + valid.error().message);
  }
  std::memcpy(result.probe, name.data(), name.size());
  auto trip_value = parse_unsigned(trip, kMaxSaturationTrip);
  if (!trip_value || *trip_value == 0) {
    return make_error("CoupeCircuitThreshold " + std::string(kind) + " TRIP: " + quoted(trip) +
                      " is not a whole percentage from 1 to " + std::to_string(kMaxSaturationTrip));
  }
  result.trip = *trip_value;
  if (auto given = set_release(kind, trip, release, parse_unsigned(release, kMaxSaturationTrip), result); !given) {
    return given.error();
  }
  return result;
}

}  // namespace

Result<ThresholdDirective> parse_threshold(std::string_view kind, std::string_view trip, std::string_view release) {
  ThresholdDirective result;
  if (kind.size() > kSaturationKind.size() && equals_ignoring_case(kind.substr(0, kSaturationKind.size()), kSaturationKind)) {
    return parse_saturation_threshold(kind, trip, release);
  }
  if (equals_ignoring_case(kind, "sessions")) {
    result.is_load = false;
  } else if (equals_ignoring_case(kind, "load")) {
    result.is_load = true;
  } else {
    return make_error("CoupeCircuitThreshold: the first argument must be sessions, load or saturation:PROBE, not " +
                      quoted(kind));
  }
  const ThresholdKind threshold_kind = result.is_load ? ThresholdKind::load : ThresholdKind::sessions;
  auto parse = [&](std::string_view text) { return parse_threshold_number(threshold_kind, text); };
  auto trip_value = parse_threshold_value(threshold_kind, trip);  // the rule shared with the helper and the CLI
  if (!trip_value) return make_error("CoupeCircuitThreshold " + std::string(kind) + " TRIP: " + trip_value.error().message);
  result.trip = *trip_value;
  if (auto given = set_release(kind, trip, release, parse(release), result); !given) return given.error();
  return result;
}

void apply_threshold(ServerSettings& settings, const ThresholdDirective& threshold) noexcept {
  if (!threshold.is_saturation) {
    (threshold.is_load ? settings.load_threshold : settings.sessions_threshold) = threshold;
    return;
  }
  if (!settings.saturation_thresholds) settings.saturation_thresholds.emplace();
  SaturationLimits& limits = *settings.saturation_thresholds;
  std::uint32_t index = 0;
  while (index < limits.count && std::strncmp(limits.limit[index].probe, threshold.probe, sizeof threshold.probe) != 0) {
    ++index;
  }
  if (index == snapshot::kMaxProbes) return;  // at most one per probe: 16 probes
  if (index == limits.count) ++limits.count;
  SaturationLimit& limit = limits.limit[index];
  std::memcpy(limit.probe, threshold.probe, sizeof limit.probe);
  limit.trip_pct = static_cast<std::uint32_t>(threshold.trip);
  limit.release_pct = static_cast<std::uint32_t>(threshold.release);
}

Result<Variable> parse_logical_name(std::string_view logical) {
  for (std::size_t i = 0; i < kVariableCount; ++i) {
    if (equals_ignoring_case(logical, kExportedVariables[i].logical) ||
        equals_ignoring_case(logical, kExportedVariables[i].default_env_name)) {
      return static_cast<Variable>(i);
    }
  }
  std::string known;
  for (const auto& variable : kExportedVariables) known += (known.empty() ? "" : ", ") + std::string(variable.logical);
  return make_error("CoupeCircuitEnvName: unknown variable " + quoted(logical) + " (one of " + known + ")");
}

Result<void> validate_env_name(std::string_view name) {
  bool valid = !name.empty() && name.size() <= 64 && !(name[0] >= '0' && name[0] <= '9');
  for (const char c : name) {
    valid = valid && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  if (!valid) {
    return make_error("CoupeCircuitEnvName: " + quoted(name) +
                      " is not a valid variable name (letters, digits and _, not starting with a digit, at most 64)");
  }
  return {};
}

Result<void> validate_snapshot_path(std::string_view path) {
  if (path.empty() || path.front() != '/') {
    return make_error("CoupeCircuitSnapshot takes an absolute path, not " + quoted(path));
  }
  return {};
}

Result<Action> parse_action(std::string_view value) {
  if (value == "none") return Action::none;
  if (value == "refuse-new") return Action::refuse_new;
  if (value == "refuse-all") return Action::refuse_all;
  return make_error("CoupeCircuitAction must be none, refuse-new or refuse-all, not " + quoted(value));
}

Result<int> parse_shed_status(std::string_view value) {
  if (value == "503") return 503;
  if (value == "429") return 429;
  return make_error("CoupeCircuitStatusCode must be 503 or 429, not " + quoted(value));
}

Result<std::uint64_t> parse_retry_after(std::string_view value) {
  auto seconds = parse_unsigned(value, 86400);
  if (!seconds) return make_error("CoupeCircuitRetryAfter takes seconds from 0 to 86400, not " + quoted(value));
  return *seconds;
}

Result<void> validate_cookie_name(std::string_view name) {
  // RFC 6265 token characters.
  bool valid = !name.empty() && name.size() <= 128;
  for (const char c : name) {
    const auto u = static_cast<unsigned char>(c);
    valid = valid && u > 0x20 && u < 0x7f && std::string_view("()<>@,;:\\\"/[]?={}").find(c) == std::string_view::npos;
  }
  if (!valid) return make_error("CoupeCircuitSessionCookie: " + quoted(name) + " is not a valid cookie name");
  return {};
}

Result<void> validate_health_token(std::string_view token) {
  bool valid = token.size() >= 16 && token.size() <= 512;
  for (const char c : token) {
    const auto u = static_cast<unsigned char>(c);
    valid = valid && u > 0x20 && u < 0x7f;
  }
  if (!valid) return make_error("CoupeCircuitHealthToken must be 16 to 512 visible ASCII characters");
  return {};
}

}  // namespace coupecircuit::module
