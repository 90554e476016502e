#include "enforcement.hpp"

namespace coupecircuit::module {
namespace {

char lower(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool has_cookie(std::string_view header, std::string_view name) noexcept {
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!header.empty()) {
    const std::size_t end = header.find_first_of(";,");
    std::string_view pair = header.substr(0, end);
    header.remove_prefix(end == std::string_view::npos ? header.size() : end + 1);
    while (!pair.empty() && is_space(pair.front())) pair.remove_prefix(1);
    const std::size_t equals = pair.find('=');
    if (equals == std::string_view::npos) continue;
    std::string_view key = pair.substr(0, equals);
    while (!key.empty() && is_space(key.back())) key.remove_suffix(1);
    if (key != name) continue;
    std::string_view value = pair.substr(equals + 1);
    while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
    while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') value = value.substr(1, value.size() - 2);
    if (!value.empty()) return true;
  }
  return false;
}

bool is_exempt(std::span<const ExemptRule> rules, std::string_view path, RegexMatcher regex_matches) noexcept {
  for (const ExemptRule& rule : rules) {
    if (rule.prefix != nullptr && path_matches_prefix(path, rule.prefix)) return true;
    if (rule.regex != nullptr && regex_matches(rule.regex, path)) return true;
  }
  return false;
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
  // A helper that cannot count the sessions does not drain the node (as a
  // stale snapshot does not): on every node at once it would empty the pool.
  const char* blind = values.sessions_known ? "" : " sessions-inconnues";
  if (values.verdict == Verdict::ok) return {200, std::string("UP") + blind + "\n"};
  std::string body = "DRAIN";
  if (values.cut) body += " coupure";
  if (values.tripped) {
    const bool sessions = values.sessions_high && values.sessions_known;
    if (sessions) body += " sessions";
    if (values.load_high) body += " load";
    if (!sessions && !values.load_high) body += " surcharge";
  }
  return {503, body + blind + "\n"};
}

}  // namespace coupecircuit::module
