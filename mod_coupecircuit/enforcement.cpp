#include "enforcement.hpp"

#include <ctime>
#include <nlohmann/json.hpp>

#include "probe_table.hpp"

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

namespace {

// The probe table of a fresh payload, when configured.
const snapshot::Payload* probes_in(const RequestValues& values, const snapshot::Payload* payload) noexcept {
  if (payload == nullptr || values.verdict == Verdict::inconnu || !probe_table::configured(*payload)) return nullptr;
  return payload;
}

// "indisponible:pg,elastic": the critical probes down, or "" when none.
std::string critical_down_reason(const snapshot::Payload& p) {
  if ((p.probe_flags & snapshot::kProbesCriticalDown) == 0 || !probe_table::fresh(p)) return {};
  std::string names;
  for (std::uint32_t i = 0; i < probe_table::count(p); ++i) {
    const auto& entry = p.probes[i];
    if (entry.status != snapshot::kProbeDown || (entry.flags & snapshot::kProbeCritical) == 0) continue;
    if (!names.empty()) names += ',';
    names += probe_table::text(entry.name);
  }
  return names.empty() ? std::string() : " indisponible:" + names;
}

}  // namespace

HealthAnswer health_answer(const RequestValues& values, const snapshot::Payload* payload) {
  if (values.verdict == Verdict::inconnu) return {200, "UP inconnu\n"};
  const snapshot::Payload* probes = probes_in(values, payload);
  const std::string probes_down = probes != nullptr ? critical_down_reason(*probes) : std::string();
  // A helper that cannot count the sessions does not drain the node (as a
  // stale snapshot does not): on every node at once it would empty the pool.
  // Stale probe results neither.
  std::string blind = values.sessions_known ? "" : " sessions-inconnues";
  if (probes != nullptr && !probe_table::fresh(*probes)) blind += " probes-inconnues";
  if (values.verdict == Verdict::ok && probes_down.empty()) return {200, "UP" + blind + "\n"};
  std::string body = "DRAIN";
  if (values.cut) body += " coupure";
  if (values.tripped) {
    const bool sessions = values.sessions_high && values.sessions_known;
    if (sessions) body += " sessions";
    if (values.load_high) body += " load";
    if (!sessions && !values.load_high) body += " surcharge";
  }
  return {503, body + probes_down + blind + "\n"};
}

namespace {

std::string iso_time(std::int64_t wall_s) {
  const std::time_t time = wall_s;
  std::tm utc{};
  char text[32] = "";
  if (::gmtime_r(&time, &utc) != nullptr) (void)std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

const char* check_status(const snapshot::ProbeEntry& entry) noexcept {
  if (entry.status == snapshot::kProbeUp) return "pass";
  if (entry.status == snapshot::kProbeDown && (entry.flags & snapshot::kProbeCritical) != 0) return "fail";
  return "warn";
}

nlohmann::json probe_checks(const snapshot::Payload& p) {
  nlohmann::json checks = nlohmann::json::object();
  const std::string time = p.probes_updated_wall_s > 0 ? iso_time(p.probes_updated_wall_s) : std::string();
  for (std::uint32_t i = 0; i < probe_table::count(p); ++i) {
    const auto& entry = p.probes[i];
    const std::string name(probe_table::text(entry.name));
    nlohmann::json check = {{"componentId", name},
                            {"status", check_status(entry)},
                            {"observedValue", static_cast<double>(entry.latency_us) / 1000.0},
                            {"observedUnit", "ms"}};
    if (!time.empty()) check["time"] = time;
    if (entry.last_error[0] != '\0') check["output"] = std::string(probe_table::text(entry.last_error));
    checks[name + ":responseTime"] = nlohmann::json::array({check});
    if (probe_table::has_saturation(entry)) {
      checks[name + ":utilization"] = nlohmann::json::array(
          {{{"componentId", name}, {"status", check_status(entry)}, {"observedValue", entry.saturation_pct},
            {"observedUnit", "%"}}});
    }
  }
  return checks;
}

bool any_probe_not_up(const snapshot::Payload& p) noexcept {
  if (!probe_table::fresh(p)) return probe_table::count(p) > 0;
  for (std::uint32_t i = 0; i < probe_table::count(p); ++i) {
    if (p.probes[i].status != snapshot::kProbeUp) return true;
  }
  return false;
}

}  // namespace

HealthAnswer health_json_answer(const RequestValues& values, const snapshot::Payload* payload,
                                std::int64_t /*now_wall_s*/) {
  const HealthAnswer text = health_answer(values, payload);
  const snapshot::Payload* probes = probes_in(values, payload);
  std::string output = text.body.substr(0, text.body.size() - 1);  // without the newline
  const bool marker = output.find(' ') != std::string::npos;
  const char* status = "pass";
  if (text.status != 200) {
    status = "fail";
  } else if (marker || (probes != nullptr && any_probe_not_up(*probes))) {
    status = "warn";
  }
  nlohmann::json document = {{"status", status}, {"output", output}, {"serviceId", "coupecircuit"}};
  if (probes != nullptr) document["checks"] = probe_checks(*probes);
  return {text.status, document.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
}

bool wants_health_json(const char* query) noexcept {
  if (query == nullptr) return false;
  std::string_view rest(query);
  while (!rest.empty()) {
    const std::size_t end = rest.find('&');
    const std::string_view pair = rest.substr(0, end);
    if (pair == "format=health+json" || pair == "format=health%2Bjson" || pair == "format=health%2bjson") return true;
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end + 1);
  }
  return false;
}

}  // namespace coupecircuit::module
