// libFuzzer target for mod_coupecircuit's httpd-free directive parsers and
// request helpers (mod_coupecircuit/module_config.hpp, enforcement.hpp): the
// values an administrator types in the Apache configuration, and the
// Authorization header and URI path a client sends. The input is split on
// '\n' into fields; every parser sees every field, the functions of two or
// three arguments see consecutive fields. Besides memory errors (ASan and
// UBSan), for any input:
//  - an accepted value is within the documented range (parse_*), and an
//    accepted name or token only holds the documented characters;
//  - numbers round-trip: parse(to_string(parse(x))) == parse(x);
//  - constant_time_equals(a, b) == (a == b);
//  - bearer_token_matches agrees with a plain reference implementation, and
//    a valid token always matches "Bearer <token>";
//  - path_matches_prefix only matches a whole-segment prefix.
// Seed corpus: tests/fuzz/corpus/directive_values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "enforcement.hpp"
#include "module_config.hpp"

namespace {

namespace cm = coupecircuit::module;

void check(bool ok) {
  if (!ok) std::abort();
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool all_digits(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// "Authorization: Bearer <token>" as RFC 6750 spells it, with the module's
// tolerance of extra spaces before and spaces or tabs after the token.
bool reference_bearer(const char* authorization, std::string_view token) {
  if (authorization == nullptr) return false;
  std::string_view header(authorization);
  if (header.size() < 7 || !equals_ignoring_case(header.substr(0, 6), "bearer") || header[6] != ' ') return false;
  header.remove_prefix(6);
  const auto first = header.find_first_not_of(' ');
  header = first == std::string_view::npos ? std::string_view{} : header.substr(first);
  const auto last = header.find_last_not_of(" \t");
  header = last == std::string_view::npos ? std::string_view{} : header.substr(0, last + 1);
  return header == token;
}

void check_single(std::string_view field) {
  if (auto age = cm::parse_max_age(field)) {
    check(*age >= 1 && *age <= cm::kMaxMaxAgeSeconds && all_digits(field));
    check(*cm::parse_max_age(std::to_string(*age)) == *age);
  }
  if (auto hold = cm::parse_hold(field)) {
    check(*hold <= cm::kMaxMaxAgeSeconds && all_digits(field));
    check(*cm::parse_hold(std::to_string(*hold)) == *hold);
  }
  if (auto retry = cm::parse_retry_after(field)) {
    check(*retry <= 86400 && all_digits(field));
  }
  if (auto on = cm::parse_on_off("CoupeCircuit", field)) {
    check(equals_ignoring_case(field, *on ? "on" : "off"));
  } else {
    check(on.error().message.rfind("CoupeCircuit", 0) == 0);
  }
  if (auto variable = cm::parse_logical_name(field)) {
    const auto index = static_cast<std::size_t>(*variable);
    check(index < cm::kVariableCount);
    check(equals_ignoring_case(field, cm::kExportedVariables[index].logical) ||
          equals_ignoring_case(field, cm::kExportedVariables[index].default_env_name));
  }
  if (cm::validate_env_name(field)) {
    check(!field.empty() && field.size() <= 64 && !(field[0] >= '0' && field[0] <= '9'));
    for (const char c : field) {
      check((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
    }
  }
  if (cm::validate_snapshot_path(field)) check(!field.empty() && field.front() == '/');
  if (auto action = cm::parse_action(field)) {
    check(field == "none" || field == "refuse-new" || field == "refuse-all");
  }
  if (auto status = cm::parse_shed_status(field)) check(*status == 503 || *status == 429);
  if (cm::has_cookie(field, "PHPSESSID")) check(field.find("PHPSESSID") != std::string_view::npos);
  if (cm::validate_cookie_name(field)) {
    check(!field.empty() && field.size() <= 128);
    for (const char c : field) {
      const auto u = static_cast<unsigned char>(c);
      check(u > 0x20 && u < 0x7f && c != ';' && c != '=' && c != ',' && c != '"');
    }
  }
  const bool token_valid = cm::validate_health_token(field).has_value();
  if (token_valid) {
    check(field.size() >= 16 && field.size() <= 512);
    for (const char c : field) {
      const auto u = static_cast<unsigned char>(c);
      check(u > 0x20 && u < 0x7f);
    }
    // What a load balancer configured with this token sends always matches.
    check(cm::bearer_token_matches(("Bearer " + std::string(field)).c_str(), field));
    check(cm::bearer_token_matches(("bEaReR   " + std::string(field) + " \t").c_str(), field));
    // ... and a token with one byte changed never does.
    std::string other(field);
    other.back() = other.back() == 'x' ? 'y' : 'x';
    check(!cm::bearer_token_matches(("Bearer " + other).c_str(), field));
  }
  check(!cm::bearer_token_matches(nullptr, field));

  cm::ServerSettings settings;
  cm::finish_settings(settings, field);
  const std::size_t length = ::strnlen(settings.vhost_name, sizeof settings.vhost_name);
  check(length < sizeof settings.vhost_name);
  check(length == (field.size() < sizeof settings.vhost_name - 1 ? field.size() : sizeof settings.vhost_name - 1) ||
        field.find('\0') < sizeof settings.vhost_name - 1);
  for (std::size_t i = 0; i < length; ++i) check(settings.vhost_name[i] == lower(field[i]));
}

void check_pair(std::string_view a, std::string_view b) {
  check(cm::constant_time_equals(a, b) == (a == b));
  check(cm::constant_time_equals(a, a));

  const bool matches = cm::path_matches_prefix(a, b);
  if (matches) {
    check(!b.empty() && a.substr(0, b.size()) == b);
    check(a.size() == b.size() || b.back() == '/' || a[b.size()] == '/');
  } else if (!b.empty() && a.substr(0, b.size()) == b) {
    check(a.size() > b.size() && b.back() != '/' && a[b.size()] != '/');
  }

  // The header arrives as a C string: it ends at the first NUL.
  const std::string header(a);
  check(cm::bearer_token_matches(header.c_str(), b) == reference_bearer(header.c_str(), b));
}

void check_threshold(std::string_view kind, std::string_view trip, std::string_view release) {
  auto parsed = cm::parse_threshold(kind, trip, release);
  if (!parsed) {
    check(parsed.error().message.rfind("CoupeCircuitThreshold", 0) == 0);
    return;
  }
  check(equals_ignoring_case(kind, parsed->is_load ? "load" : "sessions"));
  check(parsed->trip > 0 && parsed->release < parsed->trip);
  check(parsed->release_given == !release.empty());
  if (release.empty()) check(parsed->release == cm::default_release(parsed->trip));

  cm::ServerSettings settings;
  cm::apply_threshold(settings, *parsed);
  cm::finish_settings(settings, "");
  const auto& set = settings.thresholds;
  if (parsed->is_load) {
    check(set.has_load == 1 && set.load_centi == parsed->trip && settings.load_release_centi() == parsed->release);
    check(::strnlen(set.load_text, sizeof set.load_text) < sizeof set.load_text);
    // The rendered text parses back to the same value.
    auto again = cm::parse_threshold("load", set.load_text, "");
    check(again && again->trip == parsed->trip);
  } else {
    check(set.has_sessions == 1 && set.sessions == parsed->trip && settings.sessions_release() == parsed->release);
    check(::strnlen(set.sessions_text, sizeof set.sessions_text) < sizeof set.sessions_text);
    auto again = cm::parse_threshold("sessions", set.sessions_text, "");
    check(again && again->trip == parsed->trip);
  }
  // A vhost without its own threshold inherits this one.
  cm::ServerSettings merged = cm::merge_settings(settings, cm::ServerSettings{});
  cm::finish_settings(merged, "");
  check(std::memcmp(&merged.thresholds, &settings.thresholds, sizeof merged.thresholds) == 0);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 4096) return -1;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (;;) {
    const auto newline = input.find('\n', start);
    fields.push_back(input.substr(start, newline == std::string_view::npos ? std::string_view::npos : newline - start));
    if (newline == std::string_view::npos) break;
    start = newline + 1;
  }
  for (const auto field : fields) check_single(field);
  for (std::size_t i = 0; i + 1 < fields.size(); ++i) check_pair(fields[i], fields[i + 1]);
  if (fields.size() >= 2) check_pair(fields.back(), fields.front());
  for (std::size_t i = 0; i + 1 < fields.size(); ++i) {
    check_threshold(fields[i], fields[i + 1], i + 2 < fields.size() ? fields[i + 2] : std::string_view{});
    check_threshold(fields[i], fields[i + 1], std::string_view{});
  }
  return 0;
}
