// Optional enforcement in Apache (CoupeCircuitAction) and the load-balancer
// health answer, without httpd types.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "request_values.hpp"
#include "result.hpp"

namespace coupecircuit::module {

enum class Action : std::uint8_t { unset, none, refuse_new, refuse_all };
inline constexpr const char* kDefaultSessionCookie = "PHPSESSID";
inline constexpr int kDefaultShedStatus = 503;

[[nodiscard]] Result<Action> parse_action(std::string_view value);
[[nodiscard]] Result<int> parse_shed_status(std::string_view value);
[[nodiscard]] Result<std::uint64_t> parse_retry_after(std::string_view value);
[[nodiscard]] Result<void> validate_cookie_name(std::string_view name);
[[nodiscard]] Result<void> validate_health_token(std::string_view token);

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
  std::string body;  // "UP\n", "UP inconnu\n", "DRAIN coupure sessions\n"
};
// A stale or missing snapshot answers 200 "UP inconnu": a helper failure on
// every node must not take the whole pool out of the load balancer.
[[nodiscard]] HealthAnswer health_answer(const RequestValues& values);

}  // namespace coupecircuit::module
