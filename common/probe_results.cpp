#include "probe_results.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

#include "state_file.hpp"
#include "text.hpp"
#include "unique_fd.hpp"

namespace coupecircuit::probes {
namespace {

using nlohmann::json;

constexpr std::int64_t kMaxWallMs = std::numeric_limits<std::int64_t>::max() / 2;

bool is_name_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

bool is_printable_ascii(char c) noexcept {
  return c >= 0x20 && c <= 0x7E;
}

// JSON that nlohmann accepts but a strict reader must not: an object with the
// same key twice (the parser keeps the last one silently).
Result<json> parse_json_without_duplicate_keys(std::string_view text) {
  std::vector<std::set<std::string>> keys_per_depth;
  std::string duplicate;
  auto on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    const auto level = static_cast<std::size_t>(depth);
    switch (event) {
      case json::parse_event_t::object_start:
        if (keys_per_depth.size() <= level + 1) keys_per_depth.resize(level + 2);
        keys_per_depth[level + 1].clear();
        break;
      case json::parse_event_t::key:
        if (keys_per_depth.size() <= level) keys_per_depth.resize(level + 1);
        if (!keys_per_depth[level].insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& error) {
    return make_error(std::string("invalid JSON: ") + error.what());
  }
  if (!duplicate.empty()) return make_error("duplicate key " + coupecircuit::quoted(escape_for_terminal(duplicate)));
  return root;
}

Result<std::int64_t> non_negative_integer(const json& value, std::string_view where, std::int64_t max) {
  if (!value.is_number_integer()) return make_error(std::string(where) + ": expected a non-negative integer");
  if (value.is_number_unsigned()) {
    if (value.get<std::uint64_t>() > static_cast<std::uint64_t>(max)) {
      return make_error(std::string(where) + ": larger than " + std::to_string(max));
    }
    return static_cast<std::int64_t>(value.get<std::uint64_t>());
  }
  const auto signed_value = value.get<std::int64_t>();
  if (signed_value < 0) return make_error(std::string(where) + ": expected a non-negative integer");
  if (signed_value > max) return make_error(std::string(where) + ": larger than " + std::to_string(max));
  return signed_value;
}

Result<std::string> string_field(const json& value, std::string_view where) {
  if (!value.is_string()) return make_error(std::string(where) + ": expected a string");
  return value.get<std::string>();
}

Result<void> validate_error_text(std::string_view text, std::string_view where) {
  if (text.size() > kMaxErrorBytes) {
    return make_error(std::string(where) + ": longer than " + std::to_string(kMaxErrorBytes) + " bytes");
  }
  if (!std::all_of(text.begin(), text.end(), is_printable_ascii)) {
    return make_error(std::string(where) + ": not printable ASCII");
  }
  return {};
}

std::optional<ProbeStatus> parse_status(std::string_view text) noexcept {
  for (const auto status : {ProbeStatus::up, ProbeStatus::down, ProbeStatus::unknown}) {
    if (text == to_string(status)) return status;
  }
  return std::nullopt;
}

// name, type, status, error: the string fields. false when key is not one.
Result<bool> parse_probe_text_field(const std::string& key, const json& value, const std::string& field,
                                    ProbeResult& probe) {
  if (key != "name" && key != "type" && key != "status" && key != "error") return false;
  auto text = string_field(value, field);
  if (!text) return text.error();
  if (key == "name") {
    if (auto valid = validate_probe_name(*text); !valid) return make_error(field + ": " + valid.error().message);
    probe.name = std::move(*text);
  } else if (key == "type") {
    auto type = parse_probe_type(*text);
    if (!type) return make_error(field + ": expected http, tcp, redis or postgresql");
    probe.type = *type;
  } else if (key == "status") {
    auto status = parse_status(*text);
    if (!status) return make_error(field + ": expected up, down or unknown");
    probe.status = *status;
  } else {
    if (auto valid = validate_error_text(*text, field); !valid) return valid.error();
    probe.error = std::move(*text);
  }
  return true;
}

// since_wall_s, latency_us, saturation_pct: the integer fields.
Result<bool> parse_probe_number_field(const std::string& key, const json& value, const std::string& field,
                                      ProbeResult& probe) {
  std::int64_t max = 0;
  if (key == "since_wall_s") {
    max = kMaxWallMs / 1000;
  } else if (key == "latency_us") {
    max = std::numeric_limits<std::uint32_t>::max();
  } else if (key == "saturation_pct") {
    max = kMaxSaturationPct;
  } else {
    return false;
  }
  auto number = non_negative_integer(value, field, max);
  if (!number) return number.error();
  if (key == "since_wall_s") {
    probe.since_wall_s = *number;
  } else if (key == "latency_us") {
    probe.latency_us = static_cast<std::uint32_t>(*number);
  } else {
    probe.saturation_pct = static_cast<std::uint32_t>(*number);
  }
  return true;
}

Result<void> parse_probe_field(const std::string& key, const json& value, const std::string& where,
                               ProbeResult& probe) {
  const std::string field = where + "." + key;
  if (key == "critical") {
    if (!value.is_boolean()) return make_error(field + ": expected true or false");
    probe.critical = value.get<bool>();
    return {};
  }
  auto text = parse_probe_text_field(key, value, field, probe);
  if (!text) return text.error();
  if (*text) return {};
  auto number = parse_probe_number_field(key, value, field, probe);
  if (!number) return number.error();
  if (*number) return {};
  return make_error(where + ": unknown key " + coupecircuit::quoted(escape_for_terminal(key)));
}

Result<ProbeResult> parse_probe(const json& node, const std::string& where) {
  if (!node.is_object()) return make_error(where + ": expected an object");
  ProbeResult probe;
  for (const auto& [key, value] : node.items()) {
    if (auto parsed = parse_probe_field(key, value, where, probe); !parsed) return parsed.error();
  }
  for (const char* required : {"name", "type", "status"}) {
    if (!node.contains(required)) return make_error(where + ": missing \"" + required + "\"");
  }
  return probe;
}

Result<void> parse_probe_list(const json& node, ProbeResults& results) {
  if (!node.is_array()) return make_error("probes: expected an array");
  if (node.size() > kMaxProbes) return make_error("probes: more than " + std::to_string(kMaxProbes) + " probes");
  std::set<std::string> names;
  for (std::size_t index = 0; index < node.size(); ++index) {
    auto probe = parse_probe(node[index], "probes[" + std::to_string(index) + "]");
    if (!probe) return probe.error();
    if (!names.insert(probe->name).second)
      return make_error("probes: duplicate name " + coupecircuit::quoted(probe->name));
    results.probes.push_back(std::move(*probe));
  }
  return {};
}

Result<void> parse_top_field(const std::string& key, const json& value, ProbeResults& results) {
  if (key == "format") {
    if (!value.is_string() || value.get<std::string>() != kResultsFormat) {
      return make_error("format: expected \"" + std::string(kResultsFormat) + "\"");
    }
  } else if (key == "written_wall_ms") {
    auto number = non_negative_integer(value, key, kMaxWallMs);
    if (!number) return number.error();
    results.written_wall_ms = *number;
  } else if (key == "pid") {
    auto number = non_negative_integer(value, key, std::numeric_limits<std::int32_t>::max());
    if (!number) return number.error();
    results.pid = *number;
  } else if (key == "stale_after_ms") {
    auto number = non_negative_integer(value, key, kMaxWallMs);
    if (!number) return number.error();
    results.stale_after_ms = *number;
  } else if (key == "probes") {
    return parse_probe_list(value, results);
  } else {
    return make_error("unknown key " + coupecircuit::quoted(escape_for_terminal(key)));
  }
  return {};
}

Error errno_error(const std::string& what, const std::string& path) {
  const int saved = errno;
  return make_error(what + " " + path + ": " + std::error_code(saved, std::generic_category()).message(), saved);
}

}  // namespace

std::string_view to_string(ProbeType type) noexcept {
  switch (type) {
    case ProbeType::http:
      return "http";
    case ProbeType::tcp:
      return "tcp";
    case ProbeType::redis:
      return "redis";
    case ProbeType::postgresql:
      return "postgresql";
  }
  return "tcp";
}

std::string_view to_string(ProbeStatus status) noexcept {
  switch (status) {
    case ProbeStatus::up:
      return "up";
    case ProbeStatus::down:
      return "down";
    case ProbeStatus::unknown:
      return "unknown";
  }
  return "unknown";
}

std::optional<ProbeType> parse_probe_type(std::string_view text) noexcept {
  for (const auto type : {ProbeType::http, ProbeType::tcp, ProbeType::redis, ProbeType::postgresql}) {
    if (text == to_string(type)) return type;
  }
  return std::nullopt;
}

Result<void> validate_probe_name(std::string_view name) {
  if (name.empty()) return make_error("probe name is empty");
  if (name.size() > kMaxNameLength) {
    return make_error("probe name " + coupecircuit::quoted(escape_for_terminal(name)) + " is longer than " +
                      std::to_string(kMaxNameLength) + " characters");
  }
  if (!std::all_of(name.begin(), name.end(), is_name_char)) {
    return make_error("probe name " + coupecircuit::quoted(escape_for_terminal(name)) +
                      " has a character outside [A-Za-z0-9_-]");
  }
  return {};
}

std::string saturation_variable_name(std::string_view name) {
  std::string variable(kSaturationPrefix);
  for (const char c : name) {
    if (c >= 'a' && c <= 'z') {
      variable += static_cast<char>(c - 'a' + 'A');
    } else if (c == '-') {
      variable += '_';
    } else {
      variable += c;
    }
  }
  return variable;
}

std::string trim_probe_error(std::string_view text) {
  std::string out;
  out.reserve(std::min(text.size(), kMaxErrorBytes));
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool space = byte == ' ' || byte == '\t' || byte == '\n' || byte == '\r' || byte == '\v' || byte == '\f';
    char next = '?';
    if (space) {
      next = ' ';
    } else if (is_printable_ascii(c)) {
      next = c;
    }
    if (next == ' ' && (out.empty() || out.back() == ' ')) continue;
    if (out.size() == kMaxErrorBytes) break;
    out += next;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

std::int64_t clamp_stale_after_ms(std::int64_t value) noexcept {
  return std::clamp(value, kMinStaleAfterMs, kMaxStaleAfterMs);
}

std::string render_probe_results(const ProbeResults& results) {
  json probes = json::array();
  for (const auto& probe : results.probes) {
    json node = {{"name", probe.name},
                 {"type", to_string(probe.type)},
                 {"critical", probe.critical},
                 {"status", to_string(probe.status)},
                 {"since_wall_s", std::max<std::int64_t>(probe.since_wall_s, 0)},
                 {"latency_us", probe.latency_us}};
    if (probe.saturation_pct) node["saturation_pct"] = std::min(*probe.saturation_pct, kMaxSaturationPct);
    node["error"] = trim_probe_error(probe.error);
    probes.push_back(std::move(node));
  }
  json root = {{"format", kResultsFormat},
               {"written_wall_ms", std::max<std::int64_t>(results.written_wall_ms, 0)},
               {"pid", std::max<std::int64_t>(results.pid, 0)},
               {"stale_after_ms", std::max<std::int64_t>(results.stale_after_ms, 0)},
               {"probes", std::move(probes)}};
  // replace: a name the caller did not validate is never a throw here (the
  // reader rejects it instead).
  return root.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<ProbeResults> parse_probe_results(std::string_view text) {
  if (text.size() > kMaxResultsBytes) {
    return make_error("larger than " + std::to_string(kMaxResultsBytes) + " bytes");
  }
  auto root = parse_json_without_duplicate_keys(text);
  if (!root) return root.error();
  if (!root->is_object()) return make_error("expected a JSON object at the top level");
  ProbeResults results;
  results.probes.reserve(kMaxProbes);
  for (const auto& [key, value] : root->items()) {
    if (auto parsed = parse_top_field(key, value, results); !parsed) return parsed.error();
  }
  for (const char* required : {"format", "written_wall_ms", "stale_after_ms", "probes"}) {
    if (!root->contains(required)) return make_error(std::string("missing \"") + required + "\"");
  }
  return results;
}

Result<ProbeResults> read_probe_results_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY));
  if (!fd) return errno_error("cannot open probe results", path);
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0) return errno_error("cannot stat probe results", path);
  if (!S_ISREG(info.st_mode)) return make_error("probe results " + path + " is not a regular file");
  if ((info.st_mode & S_IWOTH) != 0) return make_error("probe results " + path + " is world-writable");
  if (static_cast<std::uint64_t>(info.st_size) > kMaxResultsBytes) {
    return make_error("probe results " + path + " is larger than " + std::to_string(kMaxResultsBytes) + " bytes");
  }
  // One byte more than the limit: a file that grew after fstat is caught.
  std::string text(kMaxResultsBytes + 1, '\0');
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t got = ::read(fd.get(), text.data() + done, text.size() - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return errno_error("cannot read probe results", path);
    if (got == 0) break;
    done += static_cast<std::size_t>(got);
  }
  text.resize(done);
  auto results = parse_probe_results(text);
  if (!results) return make_error("probe results " + path + ": " + results.error().message);
  return results;
}

bool results_are_stale(const ProbeResults& results, std::int64_t now_wall_ms) noexcept {
  const std::int64_t limit = clamp_stale_after_ms(results.stale_after_ms);
  const std::int64_t age = now_wall_ms - results.written_wall_ms;
  return age > limit || age < -limit;
}

}  // namespace coupecircuit::probes
