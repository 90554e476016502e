#include "module_config.hpp"

#include "decimal.hpp"
#include "text.hpp"
#include "snapshot.hpp"
#include "thresholds.hpp"

namespace coupecircuit::module {
namespace {

bool equals_ignoring_case(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace

ServerSettings merge_settings(const ServerSettings& parent, const ServerSettings& child) noexcept {
  ServerSettings merged = child;
  if (child.enabled < 0) merged.enabled = parent.enabled;
  if (!child.max_age_set) {
    merged.max_age_seconds = parent.max_age_seconds;
    merged.max_age_set = parent.max_age_set;
  }
  if (!child.hold_set) {
    merged.hold_seconds = parent.hold_seconds;
    merged.hold_set = parent.hold_set;
  }
  if (child.thresholds.has_sessions == 0) {
    merged.thresholds.has_sessions = parent.thresholds.has_sessions;
    merged.thresholds.sessions = parent.thresholds.sessions;
    snapshot::copy_text(merged.thresholds.sessions_text, parent.thresholds.sessions_text);
    merged.sessions_release = parent.sessions_release;
  }
  if (child.thresholds.has_load == 0) {
    merged.thresholds.has_load = parent.thresholds.has_load;
    merged.thresholds.load_centi = parent.thresholds.load_centi;
    snapshot::copy_text(merged.thresholds.load_text, parent.thresholds.load_text);
    merged.load_release_centi = parent.load_release_centi;
  }
  for (std::size_t i = 0; i < kVariableCount; ++i) {
    if (child.env_names[i] == nullptr) merged.env_names[i] = parent.env_names[i];
  }
  return merged;
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

Result<ThresholdDirective> parse_threshold(std::string_view kind, std::string_view trip, std::string_view release) {
  ThresholdDirective result;
  if (equals_ignoring_case(kind, "sessions")) {
    result.is_load = false;
  } else if (equals_ignoring_case(kind, "load")) {
    result.is_load = true;
  } else {
    return make_error("CoupeCircuitThreshold: the first argument must be sessions or load, not " + quoted(kind));
  }
  const ThresholdKind threshold_kind = result.is_load ? ThresholdKind::load : ThresholdKind::sessions;
  auto parse = [&](std::string_view text) { return parse_threshold_number(threshold_kind, text); };
  auto trip_value = parse_threshold_value(threshold_kind, trip);  // the rule shared with the helper and the CLI
  if (!trip_value) return make_error("CoupeCircuitThreshold " + std::string(kind) + " TRIP: " + trip_value.error().message);
  result.trip = *trip_value;
  if (release.empty()) {
    result.release = default_release(result.trip);  // 90 % of TRIP, always < TRIP
  } else {
    auto release_value = parse(release);
    if (!release_value) {
      return make_error("CoupeCircuitThreshold " + std::string(kind) + " RELEASE: " + release_value.error().message);
    }
    if (*release_value >= result.trip) {
      return make_error("CoupeCircuitThreshold " + std::string(kind) + ": RELEASE " + quoted(release) +
                        " must be lower than TRIP " + quoted(trip));
    }
    result.release = *release_value;
    result.release_given = true;
  }
  return result;
}

void apply_threshold(ServerSettings& settings, const ThresholdDirective& threshold) noexcept {
  if (threshold.is_load) {
    settings.thresholds.has_load = 1;
    settings.thresholds.load_centi = threshold.trip;
    render_centi(settings.thresholds.load_text, sizeof settings.thresholds.load_text, threshold.trip);
    settings.load_release_centi = threshold.release;
  } else {
    settings.thresholds.has_sessions = 1;
    settings.thresholds.sessions = threshold.trip;
    render_unsigned(settings.thresholds.sessions_text, sizeof settings.thresholds.sessions_text, threshold.trip);
    settings.sessions_release = threshold.release;
  }
}

Result<Variable> parse_logical_name(std::string_view logical) {
  for (std::size_t i = 0; i < kVariableCount; ++i) {
    if (equals_ignoring_case(logical, kLogicalNames[i]) || equals_ignoring_case(logical, kDefaultEnvNames[i])) {
      return static_cast<Variable>(i);
    }
  }
  std::string known;
  for (const auto name : kLogicalNames) known += (known.empty() ? "" : ", ") + std::string(name);
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

void set_vhost_identity(ServerSettings& settings, std::string_view server_hostname) noexcept {
  std::size_t length = 0;
  for (const char c : server_hostname) {
    if (length + 1 >= sizeof settings.vhost_name) break;
    settings.vhost_name[length++] = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  }
  settings.vhost_name[length] = '\0';
  settings.vhost_hash = snapshot::vhost_name_hash(settings.vhost_name, length);
}

}  // namespace coupecircuit::module
