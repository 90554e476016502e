#include "save_path.hpp"

#include <charconv>

#include "decimal.hpp"
#include "text.hpp"

namespace coupecircuit {
namespace {

// The text of a part for an error message: quoted, cut when long.
std::string quoted_part(std::string_view part) {
  constexpr std::size_t kMaxShown = 80;
  std::string shown(part.substr(0, kMaxShown));
  for (char& c : shown) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  }
  return "\"" + shown + (part.size() > kMaxShown ? "...\"" : "\"");
}

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// PHP's urldecode(): %XX and '+' for a space. A '%' not followed by two hex
// digits is kept as is, like PHP.
std::string url_decode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%' && i + 2 < text.size() && hex_value(text[i + 1]) >= 0 && hex_value(text[i + 2]) >= 0) {
      out.push_back(static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2])));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

struct QueryItem {
  std::string key;    // decoded, "[]" kept
  std::string value;  // decoded
};

std::vector<QueryItem> split_query(std::string_view query) {
  std::vector<QueryItem> items;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (pair.empty()) continue;
    const auto equals = pair.find('=');
    QueryItem item;
    item.key = url_decode(pair.substr(0, equals));
    item.value = equals == std::string_view::npos ? std::string() : url_decode(pair.substr(equals + 1));
    items.push_back(std::move(item));
  }
  return items;
}

Result<std::uint16_t> parse_port(std::string_view text, std::string_view whole) {
  auto parsed = parse_unsigned(text, 65535);
  if (!parsed || *parsed == 0) return make_error("bad port " + quoted_part(text) + " in " + quoted_part(whole));
  return static_cast<std::uint16_t>(*parsed);
}

struct HostPort {
  std::string_view host;
  std::string_view port;  // empty when absent
};

// "[v6]" or "[v6]:port".
Result<HostPort> split_bracketed(std::string_view text, std::string_view whole) {
  const auto close = text.find(']');
  if (close == std::string_view::npos) return make_error("unclosed '[' in " + quoted_part(whole));
  HostPort parts{text.substr(1, close - 1), {}};
  const std::string_view rest = text.substr(close + 1);
  if (rest.empty()) return parts;
  if (rest.front() != ':') return make_error("unexpected " + quoted_part(rest) + " in " + quoted_part(whole));
  parts.port = rest.substr(1);
  return parts;
}

// "host", "host:port", "[v6]:port".
Result<HostPort> split_host_port(std::string_view text, std::string_view whole) {
  if (!text.empty() && text.front() == '[') return split_bracketed(text, whole);
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return HostPort{text, {}};
  const HostPort parts{text.substr(0, colon), text.substr(colon + 1)};
  if (parts.host.find(':') != std::string_view::npos) {
    return make_error("IPv6 address without brackets in " + quoted_part(whole));
  }
  return parts;
}

bool is_host_char(char c) noexcept {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '-' ||
         c == '_' || c == ':';
}

// "host:port", "host" (port 6379), "[v6]:port".
Result<RedisEndpoint> parse_host_port(std::string_view text, std::string_view whole, bool port_required) {
  auto parts = split_host_port(text, whole);
  if (!parts) return parts.error();
  const auto [host, port] = *parts;
  if (host.empty()) return make_error("missing host in " + quoted_part(whole));
  for (const char c : host) {
    if (!is_host_char(c)) return make_error("bad host " + quoted_part(host) + " in " + quoted_part(whole));
  }
  RedisEndpoint endpoint;
  endpoint.host = std::string(host);
  if (!port.empty() || (port_required && text.find(':') != std::string_view::npos)) {
    auto parsed = parse_port(port, whole);
    if (!parsed) return parsed.error();
    endpoint.port = *parsed;
  } else if (port_required) {
    return make_error("missing port in " + quoted_part(whole));
  }
  return endpoint;
}

Result<void> check_positive_seconds(std::string_view key, std::string_view value) {
  double seconds = 0;
  const auto* first = value.data();
  const auto* last = value.data() + value.size();
  const auto [end, error] = std::from_chars(first, last, seconds);
  if (value.empty() || error != std::errc() || end != last || !(seconds >= 0) || seconds > 1e9) {
    return make_error(std::string(key) + "=" + quoted_part(value) + " is not a number of seconds");
  }
  return {};
}

// Settings common to both handlers. Returns an error for a bad value; an
// unknown key is left to the caller (*known false).
Result<void> apply_common(const QueryItem& item, RedisTarget& target, bool* known, bool* auth_seen) {
  *known = true;
  const std::string& key = item.key;
  if (key == "prefix") {
    target.prefix = item.value;
    return {};
  }
  if (key == "auth") {
    if (*auth_seen) return make_error("auth given twice");
    *auth_seen = true;
    target.password = item.value;
    return {};
  }
  if (key == "auth[]") {
    // auth[]=user&auth[]=pass (ACL); a single auth[] is the password.
    if (target.password.empty() && !*auth_seen) {
      target.password = item.value;
    } else if (target.user.empty()) {
      target.user = std::move(target.password);
      target.password = item.value;
    } else {
      return make_error("auth[] given more than twice (expected auth[]=user&auth[]=password)");
    }
    *auth_seen = true;
    return {};
  }
  if (key == "timeout" || key == "read_timeout") return check_positive_seconds(key, item.value);
  if (key == "persistent" || key == "persistent_id") return {};
  if (key.rfind("stream[", 0) == 0) return {};  // TLS context options: unused (no TLS, see the docs)
  *known = false;
  return {};
}

Result<SavePath> parse_files(std::string_view text) {
  SavePath path;
  path.handler = SaveHandler::files;
  std::vector<std::string_view> parts;
  std::string_view rest = text;
  for (;;) {
    const auto semicolon = rest.find(';');
    parts.push_back(rest.substr(0, semicolon));
    if (semicolon == std::string_view::npos) break;
    rest.remove_prefix(semicolon + 1);
  }
  if (parts.size() > 3) return make_error("too many ';' in " + quoted_part(text) + " (expected N;MODE;/path)");
  const std::string_view directory = parts.back();
  if (parts.size() >= 2) {
    auto depth = parse_unsigned(parts[0], 8);
    if (!depth) return make_error("depth " + quoted_part(parts[0]) + " is not a number from 0 to 8");
    path.depth = static_cast<unsigned>(*depth);
  }
  if (parts.size() == 3) {
    const std::string_view mode = parts[1];
    bool octal = !mode.empty() && mode.size() <= 4;
    for (const char c : mode) octal = octal && c >= '0' && c <= '7';
    if (!octal) return make_error("mode " + quoted_part(mode) + " is not an octal file mode");
  }
  if (directory.empty() || directory.front() != '/') {
    return make_error("directory " + quoted_part(directory) + " is not an absolute path");
  }
  path.directory = std::string(directory);
  while (path.directory.size() > 1 && path.directory.back() == '/') path.directory.pop_back();
  return path;
}

// "unix:///path", "file:/path" or "/path": the socket's absolute path.
Result<RedisEndpoint> parse_socket_location(std::string_view location, std::string_view location_text) {
  if (location.rfind("unix:", 0) == 0 || location.rfind("file:", 0) == 0) {
    location.remove_prefix(5);
    while (location.size() > 1 && location.substr(0, 2) == "//") location.remove_prefix(1);
  }
  if (location.empty() || location.front() != '/') {
    return make_error("socket path of " + quoted_part(location_text) + " is not absolute");
  }
  RedisEndpoint endpoint;
  endpoint.socket_path = std::string(location);
  return endpoint;
}

// "[tcp://|redis://]host[:port][/]".
Result<RedisEndpoint> parse_tcp_location(std::string_view location, std::string_view location_text) {
  const auto scheme_end = location.find("://");
  if (scheme_end != std::string_view::npos) {
    const std::string_view scheme = location.substr(0, scheme_end);
    if (scheme == "tls" || scheme == "ssl") {
      return make_error("scheme " + quoted_part(scheme) + " in " + quoted_part(location_text) +
                        ": TLS is not supported (use a local stunnel or a private network)");
    }
    if (scheme != "tcp" && scheme != "redis") {
      return make_error("unknown scheme " + quoted_part(scheme) + " in " + quoted_part(location_text));
    }
    location.remove_prefix(scheme_end + 3);
  }
  if (!location.empty() && location.back() == '/') location.remove_suffix(1);
  if (location.find('@') != std::string_view::npos) {
    // Never echoed: it may hold a password.
    return make_error("\"user:password@\" in a redis URL is not read by phpredis: use ?auth=");
  }
  return parse_host_port(location, location_text, false);
}

// A parameter of one redis URL that only the redis handler has.
Result<void> apply_redis_url_parameter(const QueryItem& item, RedisTarget& target, std::string_view location_text) {
  if (item.key == "database") {
    auto database = parse_unsigned(item.value, 1'000'000);
    if (!database) return make_error("database=" + quoted_part(item.value) + " is not a database number");
    target.database = static_cast<std::uint32_t>(*database);
    return {};
  }
  if (item.key == "weight") {
    auto weight = parse_unsigned(item.value, 1'000'000);
    if (!weight || *weight == 0) return make_error("weight=" + quoted_part(item.value) + " is not a positive number");
    return {};
  }
  if (item.key == "retry_interval") {
    auto interval = parse_unsigned(item.value, 1'000'000'000);
    if (!interval) return make_error("retry_interval=" + quoted_part(item.value) + " is not a number");
    return {};
  }
  return make_error("unknown parameter " + quoted_part(item.key) + " in " + quoted_part(location_text) + "?…");
}

Result<RedisTarget> parse_redis_url(std::string_view url) {
  RedisTarget target;
  target.prefix = std::string(kRedisDefaultPrefix);
  std::string_view location = url;
  std::string_view query;
  const auto question = url.find('?');
  if (question != std::string_view::npos) {
    location = url.substr(0, question);
    query = url.substr(question + 1);
    const auto hash = query.find('#');  // phpredis glues a fragment back on: not ours to keep
    if (hash != std::string_view::npos) query = query.substr(0, hash);
  }
  const bool socket = location.rfind("unix:", 0) == 0 || location.rfind("file:", 0) == 0 ||
                      (!location.empty() && location.front() == '/');
  auto endpoint = socket ? parse_socket_location(location, location) : parse_tcp_location(location, location);
  if (!endpoint) return endpoint.error();
  target.endpoints.push_back(std::move(*endpoint));

  bool auth_seen = false;
  for (const auto& item : split_query(query)) {
    bool known = false;
    auto common = apply_common(item, target, &known, &auth_seen);
    if (!common) return make_error(common.error().message + " in " + quoted_part(location) + "?…");
    if (known) continue;
    auto applied = apply_redis_url_parameter(item, target, location);
    if (!applied) return applied.error();
  }
  return target;
}

Result<SavePath> parse_redis(std::string_view text) {
  SavePath path;
  path.handler = SaveHandler::redis;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ',' || text[i] == ' ' || text[i] == '\t')) ++i;
    std::size_t j = i;
    while (j < text.size() && text[j] != ',' && text[j] != ' ' && text[j] != '\t') ++j;
    if (j > i) {
      auto target = parse_redis_url(text.substr(i, j - i));
      if (!target) return target.error();
      path.targets.push_back(std::move(*target));
    }
    i = j;
  }
  if (path.targets.empty()) return make_error("no server in the save_path (expected tcp://host:port or unix:///path)");
  return path;
}

Result<SavePath> parse_rediscluster(std::string_view text) {
  SavePath path;
  path.handler = SaveHandler::rediscluster;
  RedisTarget target;
  target.prefix = std::string(kRedisClusterDefaultPrefix);
  bool auth_seen = false;
  for (const auto& item : split_query(text)) {
    bool known = false;
    auto common = apply_common(item, target, &known, &auth_seen);
    if (!common) return common.error();
    if (known) continue;
    if (item.key == "seed[]" || item.key.rfind("seed[", 0) == 0) {
      auto endpoint = parse_host_port(item.value, "seed[]=" + item.value, true);
      if (!endpoint) return endpoint.error();
      target.endpoints.push_back(std::move(*endpoint));
    } else if (item.key == "failover") {
      if (item.value != "none" && item.value != "error" && item.value != "distribute") {
        return make_error("failover=" + quoted_part(item.value) + " is not none, error or distribute");
      }
    } else if (item.key == "database") {
      return make_error("database is not available in a Redis Cluster (only database 0)");
    } else {
      return make_error("unknown parameter " + quoted_part(item.key) +
                        " (expected seed[], prefix, auth, timeout, "
                        "read_timeout, persistent, failover)");
    }
  }
  if (target.endpoints.empty()) return make_error("no seed[]=host:port in the save_path");
  path.targets.push_back(std::move(target));
  return path;
}

}  // namespace

Result<SaveHandler> parse_save_handler(std::string_view text) {
  if (text == "files") return SaveHandler::files;
  if (text == "redis") return SaveHandler::redis;
  if (text == "rediscluster") return SaveHandler::rediscluster;
  return make_error("save_handler " + quoted_part(text) + " is not files, redis or rediscluster");
}

std::string_view to_string(SaveHandler handler) noexcept {
  constexpr const char* kNames[] = {"files", "redis", "rediscluster"};
  return enum_name(handler, kNames, "unknown");
}

std::string to_string(const RedisEndpoint& endpoint) {
  if (!endpoint.socket_path.empty()) return "unix:" + endpoint.socket_path;
  if (endpoint.host.find(':') != std::string::npos) return "[" + endpoint.host + "]:" + std::to_string(endpoint.port);
  return endpoint.host + ":" + std::to_string(endpoint.port);
}

Result<SavePath> parse_save_path(SaveHandler handler, std::string_view text) {
  const auto first = text.find_first_not_of(" \t");
  if (first == std::string_view::npos) return make_error("save_path is empty");
  text.remove_prefix(first);
  text.remove_suffix(text.size() - text.find_last_not_of(" \t") - 1);
  if (text.size() >= 2 && text.front() == '"' && text.back() == '"') text = text.substr(1, text.size() - 2);
  switch (handler) {
    case SaveHandler::files:
      return parse_files(text);
    case SaveHandler::redis:
      return parse_redis(text);
    case SaveHandler::rediscluster:
      return parse_rediscluster(text);
  }
  return make_error("unknown save_handler");
}

bool save_path_has_password(const SavePath& path) noexcept {
  for (const auto& target : path.targets) {
    if (!target.password.empty() || !target.user.empty()) return true;
  }
  return false;
}

}  // namespace coupecircuit
