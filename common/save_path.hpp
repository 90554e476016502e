// PHP's session.save_handler and session.save_path, parsed the way PHP and
// phpredis read them, so that the helper can be given the very string a
// site has in php.ini:
//
//   files         "/path", "N;/path", "N;MODE;/path"
//   redis         one or more URLs separated by commas or spaces (phpredis
//                 shards sessions over them): "tcp://host:port?query",
//                 "unix:///path/to.sock?query", "/path/to.sock"; query keys
//                 auth (or auth[]=user&auth[]=pass), database, prefix,
//                 timeout, read_timeout, weight, persistent, persistent_id,
//                 retry_interval
//   rediscluster  "seed[]=host:port&seed[]=host:port&prefix=…&auth=…"
//                 (also timeout, read_timeout, persistent, failover)
//
// Query strings are URL-decoded as PHP does (%XX, '+' is a space). Errors
// name the offending part of the string, never a password.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"

namespace coupecircuit {

enum class SaveHandler : std::uint8_t { files = 0, redis = 1, rediscluster = 2 };
[[nodiscard]] Result<SaveHandler> parse_save_handler(std::string_view text);
[[nodiscard]] std::string_view to_string(SaveHandler handler) noexcept;

inline constexpr std::string_view kRedisDefaultPrefix = "PHPREDIS_SESSION:";
inline constexpr std::string_view kRedisClusterDefaultPrefix = "PHPREDIS_CLUSTER_SESSION:";

struct RedisEndpoint {
  std::string host;         // empty for a Unix socket
  std::uint16_t port = 6379;
  std::string socket_path;  // Unix socket, else empty
  bool operator==(const RedisEndpoint&) const = default;
};
// "host:port" or "unix:/path": for logs and status (never carries a password).
[[nodiscard]] std::string to_string(const RedisEndpoint& endpoint);

// One Redis server of a phpredis "redis" pool, or the whole cluster's
// settings (endpoints are then the seeds).
struct RedisTarget {
  std::vector<RedisEndpoint> endpoints;
  std::string prefix;
  std::uint32_t database = 0;
  std::string user;      // ACL user (auth[]=user&auth[]=pass), else empty
  std::string password;  // empty: no AUTH
  bool operator==(const RedisTarget&) const = default;
};

struct SavePath {
  SaveHandler handler = SaveHandler::files;
  // files
  std::string directory;
  unsigned depth = 0;  // the N of "N;/path"
  // redis: one target per URL (each with its own prefix, database and
  // password); rediscluster: one target whose endpoints are the seeds.
  std::vector<RedisTarget> targets;
  bool operator==(const SavePath&) const = default;
};

// Parses `text` for `handler`. The error says which part is wrong.
[[nodiscard]] Result<SavePath> parse_save_path(SaveHandler handler, std::string_view text);

// True when the string carries a password (auth=), for the rule that
// passwords never come from the command line.
[[nodiscard]] bool save_path_has_password(const SavePath& path) noexcept;

}  // namespace coupecircuit
