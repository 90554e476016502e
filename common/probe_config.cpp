#include "probe_config.hpp"

#include <ini.h>

#include <algorithm>
#include <charconv>
#include <map>

#include "config_text.hpp"
#include "decimal.hpp"
#include "text.hpp"

namespace coupecircuit::probes {
namespace {

constexpr std::string_view kProbePrefix = "probe ";

std::string_view trim_blanks(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// "probe NAME" -> NAME (blanks trimmed), else nullopt.
std::optional<std::string_view> probe_section_name(std::string_view section) {
  section = trim_blanks(section);
  if (!section.starts_with(kProbePrefix)) return std::nullopt;
  return trim_blanks(section.substr(kProbePrefix.size()));
}

struct Entry {
  std::string key;
  std::string value;
  int line = 0;
};

struct Collector {
  ProbesConfig config;
  std::map<std::string, std::vector<Entry>, std::less<>> probe_entries;  // by probe name
  const IniLineReader* reader = nullptr;
  std::string first_error;
  int first_error_line = 0;
};

std::string apply_program_setting(ProbesConfig& config, std::string_view section, std::string_view key,
                                  std::string_view value) {
  if (section == "probes") {
    if (key == "results") return apply_absolute_path(key, value, config.results_path);
    return kUnknownSetting;
  }
  // [log] level: the helper checks it too; the other [log] keys are its own.
  if (key != "level") return {};
  for (const std::string_view level : {"error", "warning", "notice", "info", "debug"}) {
    if (value == level) {
      config.log_level = std::string(value);
      return {};
    }
  }
  return "level must be one of error, warning, notice, info, debug";
}

int on_setting(void* user, const char* section_text, const char* key, const char* value) {
  auto* collector = static_cast<Collector*>(user);
  const std::string_view section = trim_blanks(section_text);
  if (const auto name = probe_section_name(section)) {
    collector->probe_entries[std::string(*name)].push_back({key, value, collector->reader->line});
    return 1;
  }
  if (section != "probes" && section != "log") return 1;  // the helper's sections
  const std::string why = apply_program_setting(collector->config, section, key, value);
  if (why.empty()) return 1;
  if (collector->first_error.empty()) {
    // append, not operator+ chains: GCC 12 at -O3 warns falsely (-Wrestrict) on those.
    collector->first_error.append("[").append(section).append("] ").append(key).append(" = ").append(value);
    collector->first_error.append(": ").append(why);
    collector->first_error_line = collector->reader->line;
  }
  return 0;
}

// ------------------------------------------------------------ probe keys

bool is_secret_key(const ProbeSpec& spec, std::string_view key) {
  return key == "header" || (key == "address" && spec.type == ProbeType::redis);
}

std::string apply_common_key(ProbeSpec& spec, const Entry& entry) {
  const std::string_view key = entry.key;
  const std::string_view value = entry.value;
  auto duration = [&](std::uint32_t min, std::uint32_t max, std::uint32_t& out) -> std::string {
    auto parsed = parse_duration_ms(value, min, max);
    if (!parsed) return parsed.error().message;
    out = *parsed;
    return {};
  };
  if (key == "period") return duration(kMinPeriodMs, kMaxPeriodMs, spec.period_ms);
  if (key == "timeout") return duration(kMinTimeoutMs, kMaxTimeoutMs, spec.timeout_ms);
  if (key == "rise") return apply_bounded(value, 1, kMaxRiseFall, [&](auto v) { spec.rise = v; });
  if (key == "fall") return apply_bounded(value, 1, kMaxRiseFall, [&](auto v) { spec.fall = v; });
  if (key == "critical") {
    auto parsed = parse_boolean(value);
    if (!parsed) return parsed.error().message;
    spec.critical = *parsed;
    return {};
  }
  return kUnknownSetting;
}

bool is_token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

bool has_control_character(std::string_view text) {
  return std::any_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

std::string apply_header(HttpSettings& http, std::string_view value) {
  const auto colon = value.find(':');
  if (colon == std::string_view::npos || colon == 0) return "a header is \"Name: value\"";
  if (!std::all_of(value.begin(), value.begin() + static_cast<std::ptrdiff_t>(colon), is_token_char)) {
    return "the header name has characters other than letters, digits, '-' and '_'";
  }
  if (has_control_character(value)) return "the header has control characters";
  if (http.headers.size() >= kMaxHeaders) return "at most " + std::to_string(kMaxHeaders) + " headers";
  http.headers.emplace_back(value);
  return {};
}

std::string apply_http_key(ProbeSpec& spec, const Entry& entry) {
  HttpSettings& http = spec.http;
  const std::string_view key = entry.key;
  const std::string_view value = entry.value;
  if (key == "url") {
    if (!value.starts_with("http://") && !value.starts_with("https://")) return "url must start with http:// or https://";
    if (has_control_character(value) || value.find(' ') != std::string_view::npos) return "url has blanks or control characters";
    http.url = std::string(value);
    return {};
  }
  if (key == "method") {
    if (value.empty() || value.size() > 16 || !std::all_of(value.begin(), value.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
      return "method must be an upper-case HTTP method (GET, HEAD, POST, ...)";
    }
    http.method = std::string(value);
    return {};
  }
  if (key == "header") return apply_header(http, value);
  if (key == "status") {
    auto statuses = parse_status_list(value);
    if (!statuses) return statuses.error().message;
    http.statuses = std::move(*statuses);
    return {};
  }
  if (key == "body") {
    if (value.empty()) return "body is empty (leave it out not to check the body)";
    http.body_regex = std::string(value);
    http.body_line = entry.line;
    return {};
  }
  if (key == "insecure") {
    auto parsed = parse_boolean(value);
    if (!parsed) return parsed.error().message;
    http.insecure = *parsed;
    return {};
  }
  if (key == "ca_file") return apply_absolute_path(key, value, http.ca_file);
  return apply_common_key(spec, entry);
}

std::string apply_tcp_key(ProbeSpec& spec, const Entry& entry) {
  if (entry.key != "address") return apply_common_key(spec, entry);
  std::string_view value = entry.value;
  const auto colon = value.rfind(':');
  if (colon == std::string_view::npos) return "address must be host:port";
  std::string_view host = value.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty() || host.size() > 253 || has_control_character(host) || host.find_first_of(" /") != std::string_view::npos) {
    return "address must be host:port (a host name, an IPv4 address or [an IPv6 address])";
  }
  auto port = parse_bounded(value.substr(colon + 1), 1, 65535);
  if (!port) return "port: " + port.error().message;
  spec.tcp.host = std::string(host);
  spec.tcp.port = static_cast<std::uint16_t>(*port);
  return {};
}

std::string apply_redis_key(ProbeSpec& spec, const Entry& entry) {
  if (entry.key == "auth_file") {
    spec.secret_file_line = entry.line;
    return apply_absolute_path(entry.key, entry.value, spec.redis.auth_file);
  }
  if (entry.key != "address") return apply_common_key(spec, entry);
  std::string value = entry.value;
  // host:port alone is taken as tcp://host:port.
  if (!value.empty() && value.front() != '/' && value.find("://") == std::string::npos) value = "tcp://" + value;
  auto parsed = parse_save_path(SaveHandler::redis, value);
  if (!parsed) return parsed.error().message;
  if (parsed->targets.size() != 1 || parsed->targets.front().endpoints.size() != 1) {
    return "address names one Redis server";
  }
  spec.redis.target = std::move(parsed->targets.front());
  return {};
}

std::string apply_postgresql_key(ProbeSpec& spec, const Entry& entry) {
  if (entry.key != "conninfo_file") return apply_common_key(spec, entry);
  spec.secret_file_line = entry.line;
  return apply_absolute_path(entry.key, entry.value, spec.postgresql.conninfo_file);
}

std::string apply_probe_key(ProbeSpec& spec, const Entry& entry) {
  if (entry.key == "type") return {};
  switch (spec.type) {
    case ProbeType::http:
      return apply_http_key(spec, entry);
    case ProbeType::tcp:
      return apply_tcp_key(spec, entry);
    case ProbeType::redis:
      return apply_redis_key(spec, entry);
    case ProbeType::postgresql:
      return apply_postgresql_key(spec, entry);
  }
  return kUnknownSetting;
}

// What a probe of its type cannot run without.
std::string missing_setting(const ProbeSpec& spec) {
  switch (spec.type) {
    case ProbeType::http:
      return spec.http.url.empty() ? "url is missing" : "";
    case ProbeType::tcp:
      return spec.tcp.host.empty() ? "address (host:port) is missing" : "";
    case ProbeType::redis:
      return spec.redis.target.endpoints.empty() ? "address is missing" : "";
    case ProbeType::postgresql:
      return spec.postgresql.conninfo_file.empty() ? "conninfo_file is missing" : "";
  }
  return {};
}

class ProbeBuilder {
 public:
  ProbeBuilder(const std::string& source_name, const IniLineReader::Section& header, std::string_view name)
      : source_(source_name), header_(header) {
    spec_.name = std::string(name);
    spec_.line = header.line;
  }

  Result<ProbeSpec> build(const std::vector<Entry>& entries) {
    if (auto valid = validate_probe_name(spec_.name); !valid) return at(header_.line, "[" + header_.name + "]: " + valid.error().message);
    const Entry* type = nullptr;
    for (const auto& entry : entries) {
      if (entry.key == "type") type = &entry;
    }
    if (type == nullptr) return at(header_.line, "[" + header_.name + "]: type is missing (http, tcp, redis or postgresql)");
    const auto parsed_type = parse_probe_type(type->value);
    if (!parsed_type) {
      return at(type->line, "[" + header_.name + "] type = " + type->value + ": unknown type (http, tcp, redis or postgresql)");
    }
    spec_.type = *parsed_type;
    for (const auto& entry : entries) {
      const std::string why = apply_probe_key(spec_, entry);
      if (why.empty()) continue;
      const std::string shown = is_secret_key(spec_, entry.key) ? std::string() : " = " + entry.value;
      const std::string detail =
          why == kUnknownSetting ? "unknown setting for a " + std::string(to_string(spec_.type)) + " probe" : why;
      return at(entry.line, "[" + header_.name + "] " + entry.key + shown + ": " + detail);
    }
    if (const std::string missing = missing_setting(spec_); !missing.empty()) {
      return at(header_.line, "[" + header_.name + "]: " + missing);
    }
    return spec_;
  }

 private:
  [[nodiscard]] Error at(int line, const std::string& why) const { return make_error(source_ + ":" + std::to_string(line) + ": " + why); }

  const std::string& source_;
  const IniLineReader::Section& header_;
  ProbeSpec spec_;
};

Result<void> build_probes(const std::string& source_name, const IniLineReader& reader, Collector& collector) {
  static const std::vector<Entry> kNoEntries;
  std::map<std::string, int, std::less<>> seen;  // name -> line of its header
  for (const auto& header : reader.sections) {
    const auto name = probe_section_name(header.name);
    if (!name) continue;
    const std::string where = source_name + ":" + std::to_string(header.line) + ": [" + header.name + "]: ";
    if (const auto previous = seen.find(*name); previous != seen.end()) {
      return make_error(where + "probe " + std::string(*name) + " is already defined at line " +
                        std::to_string(previous->second));
    }
    seen.emplace(std::string(*name), header.line);
    if (collector.config.probes.size() >= kMaxProbes) {
      return make_error(where + "too many probes: at most " + std::to_string(kMaxProbes));
    }
    const auto entries = collector.probe_entries.find(*name);
    ProbeBuilder builder(source_name, header, *name);
    auto spec = builder.build(entries == collector.probe_entries.end() ? kNoEntries : entries->second);
    if (!spec) return spec.error();
    collector.config.probes.push_back(std::move(*spec));
  }
  return {};
}

}  // namespace

Result<std::uint32_t> parse_duration_ms(std::string_view text, std::uint32_t min_ms, std::uint32_t max_ms) {
  std::uint64_t ms = 0;
  if (text.ends_with("ms")) {
    auto parsed = parse_unsigned(text.substr(0, text.size() - 2), UINT32_MAX);
    if (!parsed) return make_error(quoted(text) + " is not a duration (5, 2.5, 5s, 500ms)");
    ms = *parsed;
  } else {
    const std::string_view seconds = text.ends_with("s") ? text.substr(0, text.size() - 1) : text;
    auto centi = parse_centi(seconds, UINT32_MAX / 10);
    if (!centi) return make_error(quoted(text) + " is not a duration (5, 2.5, 5s, 500ms)");
    ms = *centi * 10;
  }
  if (ms < min_ms || ms > max_ms) {
    return make_error(quoted(text) + " is out of range (" + std::to_string(min_ms) + " ms to " +
                      std::to_string(max_ms / 1000) + " s)");
  }
  return static_cast<std::uint32_t>(ms);
}

Result<std::vector<StatusRange>> parse_status_list(std::string_view text) {
  std::vector<StatusRange> statuses;
  auto parse_code = [](std::string_view code) -> std::optional<std::uint16_t> {
    auto parsed = parse_bounded(code, 100, 599);
    if (!parsed) return std::nullopt;
    return static_cast<std::uint16_t>(*parsed);
  };
  std::size_t at = 0;
  while (at < text.size()) {
    const auto end = text.find_first_of(", \t", at);
    const std::string_view item = text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    at = end == std::string_view::npos ? text.size() : end + 1;
    if (item.empty()) continue;
    const auto dash = item.find('-');
    const auto first = parse_code(item.substr(0, dash));
    const auto last = dash == std::string_view::npos ? first : parse_code(item.substr(dash + 1));
    if (!first || !last || *last < *first) {
      return make_error(quoted(item) + " is not a status (100-599) or a range of statuses (200-299)");
    }
    if (statuses.size() >= 32) return make_error("at most 32 statuses or ranges");
    statuses.push_back({*first, *last});
  }
  if (statuses.empty()) return make_error("no status given");
  return statuses;
}

bool status_accepted(const std::vector<StatusRange>& statuses, long status) noexcept {
  return std::any_of(statuses.begin(), statuses.end(),
                     [status](const StatusRange& range) { return status >= range.first && status <= range.last; });
}

Result<ProbesConfig> parse_probes_config_text(std::string_view text, const std::string& source_name) {
  IniLineReader reader{text};
  Collector collector;
  collector.reader = &reader;
  const int line = ::ini_parse_stream(ini_read_line, &reader, on_setting, &collector);
  const std::string error = ini_error(reader, source_name, line, collector.first_error_line, collector.first_error);
  if (!error.empty()) return make_error(error);
  if (auto built = build_probes(source_name, reader, collector); !built) return built.error();
  return std::move(collector.config);
}

Result<ProbesConfig> load_probes_config(const std::string& path, bool required) {
  auto text = read_config_file(path, required);
  if (!text) return text.error();
  // A missing file parses as an empty one: the defaults.
  return parse_probes_config_text(text->value_or(std::string()), path);
}

std::int64_t stale_after_ms(const ProbesConfig& config) noexcept {
  std::int64_t longest_period = 0;
  std::int64_t longest_timeout = 0;
  for (const auto& probe : config.probes) {
    longest_period = std::max<std::int64_t>(longest_period, probe.period_ms);
    longest_timeout = std::max<std::int64_t>(longest_timeout, probe.timeout_ms);
  }
  if (config.probes.empty()) return 3 * std::int64_t{kDefaultPeriodMs} + kDefaultTimeoutMs;
  return 3 * longest_period + longest_timeout;
}

}  // namespace coupecircuit::probes
