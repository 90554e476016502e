#include "daemon_config.hpp"

#include <arpa/inet.h>
#include <ini.h>

#include "config_text.hpp"
#include "decimal.hpp"
#include "text.hpp"
#include "thresholds.hpp"

namespace coupecircuit {
namespace {

struct ParseContext {
  DaemonConfig config;
  std::string first_error;
  int first_error_line = 0;
  const IniLineReader* reader = nullptr;
  bool after_authenticated = false;  // the previous setting was [sessions] authenticated
  int empty_authenticated_line = 0;  // "authenticated =" with no rule (yet), 0 if none
  int save_path_line = 0;            // for errors found once the whole file is read
  int cluster_line = 0;              // first [cluster] setting, 0 if none
};

// Settings whose value is never repeated in an error message.
bool is_secret_setting(std::string_view section, std::string_view key) {
  return (section == "sessions" && (key == "save_path" || key == "auth_file")) ||
         (section == "cluster" && (key == "redis" || key == "auth_file"));
}

// "authenticated" takes rules separated by commas, and more on indented
// continuation lines, which add to the rules of the line above instead of
// replacing them.
std::string apply_authenticated(ParseContext& context, std::string_view value) {
  const bool continuation = context.reader->indented && context.after_authenticated;
  if (!continuation && value.find_first_not_of(" \t\r,") == std::string_view::npos) {
    // "authenticated =" alone: the rules follow on continuation lines.
    context.config.scan.rule.authenticated.clear();
    context.empty_authenticated_line = context.reader->line;
    return {};
  }
  auto parsed = parse_authenticated_rule(value, context.config.scan.rule);
  if (!parsed) return parsed.error().message;
  if (continuation) {
    auto& rules = context.config.scan.rule.authenticated;
    rules.insert(rules.end(), parsed->authenticated.begin(), parsed->authenticated.end());
    if (rules.size() > kMaxAuthenticatedRules) {
      return "too many authenticated rules: at most " + std::to_string(kMaxAuthenticatedRules);
    }
  } else {
    context.config.scan.rule = std::move(*parsed);
  }
  context.empty_authenticated_line = 0;
  return {};
}

// [sessions], the numbers.
std::string apply_sessions_number(DaemonConfig& config, std::string_view key, std::string_view value) {
  ScanOptions& scan = config.scan;
  if (key == "active_minutes") {
    return apply_bounded(value, 1, std::uint64_t{7} * 24 * 60, [&](auto v) { scan.active_minutes = v; });
  }
  if (key == "rescan_interval") {
    return apply_bounded(value, 1, 86400, [&](auto v) {
      config.rescan_interval_s = v;
      config.rescan_interval_set = true;
    });
  }
  if (key == "gc_maxlifetime") return apply_bounded(value, 1, 365U * 86400U, [&](auto v) { config.gc_maxlifetime_s = v; });
  if (key == "max_read_bytes") return apply_bounded(value, 64, 16U << 20, [&](auto v) { scan.max_read_bytes = v; });
  if (key == "read_chunk_bytes") {
    return apply_bounded(value, 4096, 16U << 20, [&](auto v) { scan.read_chunk_bytes = v; });
  }
  if (key == "max_depth") return apply_bounded(value, 0, 8, [&](auto v) { scan.max_depth = v; });
  if (key == "scan_threads") return apply_bounded(value, 1, 64, [&](auto v) { scan.scan_threads = v; });
  return kUnknownSetting;
}

// [sessions], where the sessions are kept (save_path is checked once the
// whole file is read: it depends on save_handler).
std::string apply_sessions_store(DaemonConfig& config, std::string_view key, std::string_view value) {
  if (key == "save_handler") {
    auto handler = parse_save_handler(value);
    if (!handler) return handler.error().message;
    config.save_handler = *handler;
    return {};
  }
  if (key == "save_path") {
    if (value.empty()) return "save_path is empty";
    config.save_path_text = std::string(value);
    return {};
  }
  if (key == "auth_file") return apply_absolute_path(key, value, config.auth_file);
  return apply_sessions_number(config, key, value);
}

std::string apply_sessions_setting(DaemonConfig& config, std::string_view key, std::string_view value) {
  if (key == "dir") return apply_absolute_path(key, value, config.scan.session_dir);
  if (key == "classify_inactive") {
    auto parsed = parse_boolean(value);
    if (!parsed) return parsed.error().message;
    config.scan.classify_inactive = *parsed;
    return {};
  }
  if (key == "format") {
    auto format = parse_session_format(value);
    if (!format) return format.error().message;
    config.scan.rule.format = *format;
    return {};
  }
  if (key == "unknown_key") {
    config.scan.rule.unknown_key = std::string(value);
    return {};
  }
  return apply_sessions_store(config, key, value);
}

// What AgentListener::open will accept: checked here so that a bad address
// is a configuration error (file:line, exit 2), not an agent that never runs.
bool is_ip_address(std::string_view value) {
  const std::string text(value);
  in6_addr address{};
  return ::inet_pton(text.find(':') != std::string::npos ? AF_INET6 : AF_INET, text.c_str(), &address) == 1;
}

std::string apply_agent_setting(AgentSettings& agent, std::string_view key, std::string_view value) {
  if (key == "port") return apply_bounded(value, 0, 65535, [&](auto v) { agent.port = static_cast<std::uint16_t>(v); });
  if (key == "bind") {
    if (!is_ip_address(value)) return "bind must be an IPv4 or IPv6 address";
    agent.bind = std::string(value);
    return {};
  }
  if (key == "sessions" || key == "load") {
    const ThresholdKind kind = key == "load" ? ThresholdKind::load : ThresholdKind::sessions;
    auto trip = parse_threshold_value(kind, value);  // the rule shared with the directive and the CLI
    if (!trip) return std::string(key) + ": " + trip.error().message;
    (kind == ThresholdKind::load ? agent.load_trip_centi : agent.sessions_trip) = *trip;
    return {};
  }
  if (key == "on_cut") {
    if (value != "drain" && value != "maint") return "on_cut must be drain or maint";
    agent.maint_on_cut = value == "maint";
    return {};
  }
  return kUnknownSetting;
}

std::string apply_log_level(DaemonConfig& config, std::string_view value) {
  for (const std::string_view level : {"error", "warning", "notice", "info", "debug"}) {
    if (value == level) {
      config.log_level = std::string(value);
      return {};
    }
  }
  return "level must be one of error, warning, notice, info, debug";
}

// [probes] results is read here too; the rest of [probes] and every
// [probe NAME] is checked by coupecircuit-probes (common/probe_config.*).
std::string apply_probes_setting(DaemonConfig& config, std::string_view section, std::string_view key,
                                 std::string_view value) {
  config.probes_configured = true;
  if (section == "probes" && key == "results") return apply_absolute_path(key, value, config.probes_results_path);
  return {};
}

std::string apply_cluster_setting(ClusterConfig& cluster, std::string_view key, std::string_view value) {
  if (key == "name" || key == "node") {
    if (auto valid = validate_cluster_name(key, value); !valid) return valid.error().message;
    (key == "name" ? cluster.name : cluster.node) = std::string(value);
    return {};
  }
  if (key == "redis") {
    auto parsed = parse_cluster_redis(value);
    if (!parsed) return parsed.error().message;
    cluster.redis_text = std::string(value);
    cluster.redis = std::move(*parsed);
    return {};
  }
  if (key == "auth_file") return apply_absolute_path(key, value, cluster.auth_file);
  if (key == "timeout_ms") return apply_bounded(value, 50, 60'000, [&](auto v) { cluster.timeout_ms = v; });
  if (key == "lease_ttl") return apply_bounded(value, 1, 300, [&](auto v) { cluster.lease_ttl_s = v; });
  if (key == "counts_stale_after") return apply_bounded(value, 1, 3600, [&](auto v) { cluster.counts_stale_after_s = v; });
  return kUnknownSetting;
}

std::string apply_setting(DaemonConfig& config, std::string_view section, std::string_view key,
                          std::string_view value) {
  if (section == "probes" || section.starts_with("probe ")) return apply_probes_setting(config, section, key, value);
  if (section == "sessions") return apply_sessions_setting(config, key, value);
  if (section == "cluster") return apply_cluster_setting(config.cluster, key, value);
  if (section == "agent") return apply_agent_setting(config.agent, key, value);
  if (section == "snapshot" && key == "path") return apply_absolute_path(key, value, config.snapshot_path);
  if (section == "state" && key == "path") return apply_absolute_path(key, value, config.state_path);
  if (section == "log" && key == "level") return apply_log_level(config, value);
  return kUnknownSetting;
}

int on_setting(void* user, const char* section, const char* name, const char* value) {
  auto* context = static_cast<ParseContext*>(user);
  const bool authenticated = std::string_view(section) == "sessions" && std::string_view(name) == "authenticated";
  const std::string why =
      authenticated ? apply_authenticated(*context, value) : apply_setting(context->config, section, name, value);
  context->after_authenticated = authenticated;
  if (why.empty()) {
    if (std::string_view(section) == "sessions" && std::string_view(name) == "save_path") {
      context->save_path_line = context->reader->line;
    }
    if (std::string_view(section) == "cluster") {
      if (context->cluster_line == 0) context->cluster_line = context->reader->line;
      if (std::string_view(name) == "redis") context->config.cluster.where = std::to_string(context->reader->line);
    }
    return 1;
  }
  if (context->first_error.empty()) {
    context->first_error = std::string("[").append(section) + "] " + name +
                           (is_secret_setting(section, name) ? std::string() : std::string(" = ").append(value)) + ": " + why;
    context->first_error_line = context->reader->line;
  }
  return 0;  // inih reports the line of the first rejected setting
}

// [cluster] as a whole, once the file is read: name and redis go together.
Result<void> finish_cluster(ParseContext& context, const std::string& source_name) {
  ClusterConfig& cluster = context.config.cluster;
  if (context.cluster_line == 0) return {};
  const std::string at = source_name + ":" + std::to_string(context.cluster_line) + ": [cluster] ";
  if (cluster.name.empty()) return make_error(at + "name is required (the cluster's name, e.g. prod-web)");
  if (cluster.redis_text.empty()) {
    return make_error(at + "redis is required (tcp://host:port, unix:///path or seed[]=host:port&seed[]=…)");
  }
  // The line number alone was kept while parsing: the file's name is known now.
  cluster.where = source_name + ":" + cluster.where;
  if (cluster.node.empty()) cluster.node = default_node_name();
  return {};
}

}  // namespace

Result<void> validate_cluster_name(std::string_view what, std::string_view name) {
  constexpr std::size_t kMax = 63;
  if (name.empty() || name.size() > kMax) {
    return make_error(std::string(what) + " must be 1 to " + std::to_string(kMax) + " characters");
  }
  for (const char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                         c == '.' || c == '-';
    if (!allowed) {
      return make_error(std::string(what) + " " + quoted(name) +
                        " has a character outside [A-Za-z0-9_.-] (no spaces, slashes or braces: it goes into Redis keys)");
    }
  }
  return {};
}

Result<SavePath> parse_cluster_redis(std::string_view text) {
  const auto first = text.find_first_not_of(" \t\"");
  const bool cluster = first != std::string_view::npos && text.substr(first).rfind("seed[", 0) == 0;
  auto parsed = parse_save_path(cluster ? SaveHandler::rediscluster : SaveHandler::redis, text);
  if (!parsed) return parsed.error();
  if (!cluster && parsed->targets.size() != 1) {
    return make_error("one Redis server (or seed[]=host:port&… for a Redis Cluster), not a list of " +
                      std::to_string(parsed->targets.size()));
  }
  return parsed;
}

std::string default_node_name() {
  char buffer[256] = {};
  if (::gethostname(buffer, sizeof buffer - 1) != 0 || buffer[0] == '\0') return "localhost";
  std::string name(buffer);
  if (!validate_cluster_name("node", name)) name = name.substr(0, name.find('.'));
  if (!validate_cluster_name("node", name)) name = "localhost";
  return name;
}

Result<void> read_cluster_password(ClusterConfig& cluster) {
  cluster.auth_password.clear();
  if (cluster.auth_file.empty()) return {};
  auto password = read_password_file(cluster.auth_file);
  if (!password) return make_error("[cluster] " + password.error().message);
  cluster.auth_password = std::move(*password);
  return {};
}

Result<DaemonConfig> parse_daemon_config_text(std::string_view text, const std::string& source_name,
                                              DaemonConfig base) {
  IniLineReader reader{text};
  ParseContext context{std::move(base), {}, 0, &reader};
  const int line = ::ini_parse_stream(ini_read_line, &reader, on_setting, &context);
  const std::string error = ini_error(reader, source_name, line, context.first_error_line, context.first_error);
  if (!error.empty()) return make_error(error);
  if (context.empty_authenticated_line != 0) {
    return make_error(source_name + ":" + std::to_string(context.empty_authenticated_line) +
                      ": [sessions] authenticated: no rule given (rules follow on the same line or on "
                      "indented lines below)");
  }
  if (auto cluster = finish_cluster(context, source_name); !cluster) return cluster.error();
  if (!context.config.save_path_text.empty()) {
    // Checked once both save_handler and save_path are known.
    auto store = parse_save_path(context.config.save_handler, context.config.save_path_text);
    if (!store) {
      return make_error(source_name + ":" + std::to_string(context.save_path_line) + ": [sessions] save_path (for " +
                        std::string(to_string(context.config.save_handler)) + "): " + store.error().message);
    }
  }
  return context.config;
}

Result<void> resolve_session_store(DaemonConfig& config, const std::string& where) {
  if (!config.rescan_interval_set) {
    config.rescan_interval_s = config.save_handler == SaveHandler::files ? kFilesRescanIntervalS : kRedisRescanIntervalS;
  }
  config.store = SavePath{};
  config.auth_password.clear();
  if (config.save_path_text.empty()) {
    if (config.save_handler != SaveHandler::files) {
      return make_error(where + ": save_handler " + std::string(to_string(config.save_handler)) + " needs a save_path");
    }
    return {};
  }
  auto store = parse_save_path(config.save_handler, config.save_path_text);
  if (!store) {
    return make_error(where + ": save_path (for " + std::string(to_string(config.save_handler)) + "): " +
                      store.error().message);
  }
  config.store = std::move(*store);
  if (config.save_handler == SaveHandler::files) {
    config.scan.session_dir = config.store.directory;
    if (config.store.depth > config.scan.max_depth) config.scan.max_depth = config.store.depth;
    return {};
  }
  if (!config.auth_file.empty()) {
    auto password = read_password_file(config.auth_file);
    if (!password) return password.error();
    config.auth_password = std::move(*password);
  }
  return {};
}

Result<DaemonConfig> parse_daemon_config_text(std::string_view text, const std::string& source_name) {
  DaemonConfig defaults;
  return parse_daemon_config_text(text, source_name, std::move(defaults));
}

Result<DaemonConfig> load_daemon_config(const std::string& path, bool required) {
  auto text = read_config_file(path, required);
  if (!text) return text.error();
  // A missing optional file: the defaults, parsed from nothing (one path).
  return parse_daemon_config_text(*text ? std::string_view(**text) : std::string_view(), path);
}

}  // namespace coupecircuit
