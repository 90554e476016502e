// Optional enforcement in Apache (CoupeCircuitAction) and the load-balancer
// health answer, without httpd types.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "module_config.hpp"
#include "request_values.hpp"
#include "result.hpp"

namespace coupecircuit::module {

// Does a Cookie header carry a cookie of this name with a non-empty value?
// Several cookies of the same name (set for two paths or domains) are
// common: any of them counts. Pairs are separated by ';' (and ',' where
// httpd merged several Cookie headers); a malformed pair is skipped.
[[nodiscard]] bool has_cookie(std::string_view header, std::string_view name) noexcept;

// Is the path exempt from shedding by one of the rules? A rule's regular
// expression is matched by regex_matches(rule.regex, path).
using RegexMatcher = bool (*)(const void* regex, std::string_view path) noexcept;
[[nodiscard]] bool is_exempt(std::span<const ExemptRule> rules, std::string_view path,
                             RegexMatcher regex_matches) noexcept;

// Shed a request? Only while the vhost is tripped or cut; never an exempt
// path; refuse-new lets through requests carrying the session cookie.
[[nodiscard]] bool should_shed(Action action, Verdict verdict, bool has_session_cookie, bool exempt) noexcept;
[[nodiscard]] const char* shed_reason(Verdict verdict) noexcept;  // "coupure" | "surcharge"

// A path prefix matches whole segments: "/static" matches "/static" and
// "/static/app.css", not "/staticky".
[[nodiscard]] bool path_matches_prefix(std::string_view path, std::string_view prefix) noexcept;

// Same length and bytes, in time that depends only on the lengths.
[[nodiscard]] bool constant_time_equals(std::string_view a, std::string_view b) noexcept;
// "Authorization: Bearer <token>" (scheme case-insensitive).
[[nodiscard]] bool bearer_token_matches(const char* authorization, std::string_view token) noexcept;

struct HealthAnswer {
  int status;        // 200 or 503
  std::string body;  // "UP\n", "UP inconnu\n", "DRAIN coupure sessions\n", "UP sessions-inconnues\n"
};
// A stale or missing snapshot answers 200 "UP inconnu", and a helper that
// cannot count the sessions adds "sessions-inconnues" without draining: a
// helper failure on every node must not take the whole pool out of the load
// balancer. With probes (payload: the fresh copy the values were computed
// from, null when none): a critical probe down drains, its reason
// "indisponible:NAME,NAME" listing the critical probes down; stale probe
// results add "probes-inconnues" without draining (the same fail-open rule).
[[nodiscard]] HealthAnswer health_answer(const RequestValues& values, const snapshot::Payload* payload = nullptr);

// The same answer as application/health+json (draft-inadarei-api-health-check):
// "status" pass (UP), warn (UP with a marker, or a probe down or unknown that
// drains nothing) or fail (DRAIN, status 503), "output" the text answer's
// reasons, and "checks" with one "NAME:responseTime" entry per probe (and
// "NAME:utilization" while its saturation is measured).
[[nodiscard]] HealthAnswer health_json_answer(const RequestValues& values, const snapshot::Payload* payload,
                                              std::int64_t now_wall_s);
// Does the query ask for the JSON answer? "format=health+json" (or %2B).
[[nodiscard]] bool wants_health_json(const char* query) noexcept;

}  // namespace coupecircuit::module
