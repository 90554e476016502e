#include "daemon_config.hpp"

#include <ini.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "decimal.hpp"

namespace coupecircuit {
namespace {

struct ParseContext {
  DaemonConfig config;
  std::string first_error;
};

Result<std::uint32_t> parse_bounded(std::string_view value, std::uint64_t min, std::uint64_t max) {
  auto parsed = parse_unsigned(value, max);
  if (!parsed) return parsed.error();
  if (*parsed < min) return make_error("\"" + std::string(value) + "\" is below the minimum " + std::to_string(min));
  return static_cast<std::uint32_t>(*parsed);
}

// Returns an empty string when accepted, else why not.
std::string apply_setting(DaemonConfig& config, std::string_view section, std::string_view key,
                          std::string_view value) {
  auto bounded = [&](std::uint64_t min, std::uint64_t max, auto assign) -> std::string {
    auto parsed = parse_bounded(value, min, max);
    if (!parsed) return parsed.error().message;
    assign(*parsed);
    return {};
  };
  if (section == "sessions") {
    if (key == "dir") {
      if (value.empty() || value.front() != '/') return "dir must be an absolute path";
      config.scan.session_dir = std::string(value);
      return {};
    }
    if (key == "active_minutes") return bounded(1, 7 * 24 * 60, [&](auto v) { config.scan.active_minutes = v; });
    if (key == "rescan_interval") return bounded(1, 86400, [&](auto v) { config.rescan_interval_s = v; });
    if (key == "max_read_bytes") return bounded(64, 16U << 20, [&](auto v) { config.scan.max_read_bytes = v; });
    if (key == "max_depth") return bounded(0, 8, [&](auto v) { config.scan.max_depth = v; });
    if (key == "format") {
      auto format = parse_session_format(value);
      if (!format) return format.error().message;
      config.scan.rule.format = *format;
      return {};
    }
    if (key == "authenticated") {
      auto rule = parse_authenticated_rule(value, config.scan.rule);
      if (!rule) return rule.error().message;
      config.scan.rule = *rule;
      return {};
    }
    if (key == "unknown_key") {
      config.scan.rule.unknown_key = std::string(value);
      return {};
    }
  } else if (section == "snapshot" && key == "path") {
    if (value.empty() || value.front() != '/') return "path must be an absolute path";
    config.snapshot_path = std::string(value);
    return {};
  } else if (section == "state" && key == "path") {
    if (value.empty() || value.front() != '/') return "path must be an absolute path";
    config.state_path = std::string(value);
    return {};
  } else if (section == "log" && key == "level") {
    if (value != "error" && value != "warning" && value != "notice" && value != "info" && value != "debug") {
      return "level must be one of error, warning, notice, info, debug";
    }
    config.log_level = std::string(value);
    return {};
  }
  return "unknown setting";
}

int on_setting(void* user, const char* section, const char* name, const char* value) {
  auto* context = static_cast<ParseContext*>(user);
  const std::string why = apply_setting(context->config, section, name, value);
  if (why.empty()) return 1;
  if (context->first_error.empty()) {
    context->first_error = "[" + std::string(section) + "] " + name + " = " + value + ": " + why;
  }
  return 0;  // inih reports the line of the first rejected setting
}

}  // namespace

Result<DaemonConfig> parse_daemon_config_text(std::string_view text, const std::string& source_name,
                                             DaemonConfig base) {
  ParseContext context{std::move(base), {}};
  const std::string copy(text);
  const int line = ::ini_parse_string(copy.c_str(), on_setting, &context);
  if (line < 0) return make_error(source_name + ": cannot read");
  if (line > 0) {
    const std::string why = context.first_error.empty() ? "syntax error" : context.first_error;
    return make_error(source_name + ":" + std::to_string(line) + ": " + why);
  }
  return context.config;
}

Result<DaemonConfig> load_daemon_config(const std::string& path, bool required) {
  std::ifstream file(path);
  if (!file) {
    if (!required && errno == ENOENT) return DaemonConfig{};
    return make_error("cannot read config file " + path + ": " + std::strerror(errno), errno);
  }
  std::ostringstream text;
  text << file.rdbuf();
  return parse_daemon_config_text(text.str(), path);
}

}  // namespace coupecircuit
