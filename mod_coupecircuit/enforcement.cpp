#include "enforcement.hpp"

#include "decimal.hpp"
#include "text.hpp"

namespace coupecircuit::module {
namespace {

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

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

bool should_shed(Action action, Verdict verdict, bool has_session_cookie, bool exempt) noexcept {
  if (exempt || (verdict != Verdict::coupure && verdict != Verdict::surcharge)) return false;
  if (action == Action::refuse_all) return true;
  return action == Action::refuse_new && !has_session_cookie;
}

const char* shed_reason(Verdict verdict) noexcept { return verdict == Verdict::coupure ? "coupure" : "surcharge"; }

bool path_matches_prefix(std::string_view path, std::string_view prefix) noexcept {
  if (prefix.empty() || path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

bool constant_time_equals(std::string_view a, std::string_view b) noexcept {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  const std::size_t length = a.size() < b.size() ? a.size() : b.size();
  for (std::size_t i = 0; i < length; ++i) {
    difference = static_cast<unsigned char>(difference | (static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i])));
  }
  return difference == 0;
}

bool bearer_token_matches(const char* authorization, std::string_view token) noexcept {
  if (authorization == nullptr) return false;
  std::string_view header(authorization);
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size()) return false;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (lower(header[i]) != kScheme[i]) return false;
  }
  header.remove_prefix(kScheme.size());
  if (header.front() != ' ') return false;
  while (!header.empty() && header.front() == ' ') header.remove_prefix(1);
  while (!header.empty() && (header.back() == ' ' || header.back() == '\t')) header.remove_suffix(1);
  return constant_time_equals(header, token);
}

HealthAnswer health_answer(const RequestValues& values) {
  if (values.verdict == Verdict::inconnu) return {200, "UP inconnu\n"};
  if (values.verdict == Verdict::ok) return {200, "UP\n"};
  std::string body = "DRAIN";
  if (values.cut) body += " coupure";
  if (values.tripped) {
    if (values.sessions_high) body += " sessions";
    if (values.load_high) body += " load";
    if (!values.sessions_high && !values.load_high) body += " surcharge";
  }
  return {503, body + "\n"};
}

}  // namespace coupecircuit::module
