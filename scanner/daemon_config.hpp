// coupecircuitd's configuration: an INI file (default
// /etc/coupecircuit/coupecircuitd.conf, parsed with inih), then command-line
// flags that override it. Every key is documented in conf.d/coupecircuitd.conf
// and in the README.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent.hpp"
#include "config_text.hpp"  // kDefaultConfigPath, read_password_file
#include "probe_results.hpp"
#include "result.hpp"
#include "save_path.hpp"
#include "session_scanner.hpp"

namespace coupecircuit {

inline constexpr std::uint32_t kFilesRescanIntervalS = 60;
inline constexpr std::uint32_t kRedisRescanIntervalS = 10;

// [cluster]: the nodes sharing one control state (cut, threshold
// overrides) through Redis. Without a name, the node stays on its own.
inline constexpr std::uint32_t kClusterHeartbeatMs = 1000;  // node registry refresh
inline constexpr std::uint32_t kClusterRereadS = 5;         // control state re-read, the safety net of pub/sub

struct ClusterConfig {
  std::string name;        // [cluster] name, [A-Za-z0-9_.-]{1,63}; empty: not in a cluster
  std::string node;        // [cluster] node, same characters; default: the host name
  std::string redis_text;  // [cluster] redis, as [sessions] save_path; never logged (may hold a password)
  SavePath redis;          // parsed: handler redis (one server) or rediscluster (its seeds)
  std::string auth_file;   // [cluster] auth_file: the Redis password, root-only file
  std::string auth_password;  // read from auth_file by read_cluster_password; never logged
  std::uint32_t timeout_ms = 1000;  // [cluster] timeout_ms: connect and command
  std::uint32_t lease_ttl_s = 6;    // [cluster] lease_ttl: the session lease's TTL (sessions in Redis)
  std::uint32_t counts_stale_after_s = 0;  // [cluster] counts_stale_after; 0: 3 x [sessions] rescan_interval
  std::string where;       // "file:line" of [cluster] redis, for the errors met when connecting
  [[nodiscard]] bool enabled() const noexcept { return !name.empty(); }
  bool operator==(const ClusterConfig&) const = default;
};

// Checks a cluster or node name: [A-Za-z0-9_.-]{1,63} (it goes into Redis
// keys, the snapshot and logs).
[[nodiscard]] Result<void> validate_cluster_name(std::string_view what, std::string_view name);
// Parses [cluster] redis: "seed[]=host:port&…" is a Redis Cluster, anything
// else one server as a phpredis URL (tcp://host:port?auth=…&database=N,
// unix:///path).
[[nodiscard]] Result<SavePath> parse_cluster_redis(std::string_view text);
// The host name, cut at the first dot when longer than a node name may be.
[[nodiscard]] std::string default_node_name();

struct DaemonConfig {
  ScanOptions scan;                       // [sessions]
  std::uint32_t rescan_interval_s = kFilesRescanIntervalS;  // [sessions] rescan_interval: full rescan period
  bool rescan_interval_set = false;       // given in the file or on the command line (else: per store)
  // [sessions] save_handler and save_path, as in php.ini. For files, the
  // save_path sets scan.session_dir; for redis and rediscluster it says
  // where the sessions are (store holds it parsed).
  SaveHandler save_handler = SaveHandler::files;
  std::string save_path_text;             // never logged: may hold a password
  SavePath store;                         // parsed save_path (redis, rediscluster)
  std::uint32_t gc_maxlifetime_s = 1440;  // [sessions] gc_maxlifetime: the TTL of a session write
  std::string auth_file;                  // [sessions] auth_file: the Redis password, root-only file
  std::string auth_password;              // read from auth_file by load_daemon_config; never logged
  std::string snapshot_path = "/run/coupecircuit/snapshot";  // [snapshot] path
  std::string state_path = "/var/lib/coupecircuit/state";    // [state] path
  std::string log_level = "info";         // [log] level: error|warning|notice|info|debug
  AgentSettings agent;                    // [agent] port, bind, sessions, load
  // [probes] and [probe NAME] belong to coupecircuit-probes, except the path
  // of the results file both programs use. Either section present: the
  // snapshot's probe table is in use (else it stays empty, all zero).
  bool probes_configured = false;
  std::string probes_results_path = probes::kDefaultResultsPath;  // [probes] results
  ClusterConfig cluster;                  // [cluster]
};

// Applies the file's settings over `base` (or over the defaults). Errors name
// the file and line. Two declarations rather than a default argument: the
// defaults are then built inside this library, not at each caller, where
// GCC 12 at -O3 reports a maybe-uninitialized false positive.
[[nodiscard]] Result<DaemonConfig> parse_daemon_config_text(std::string_view text, const std::string& source_name,
                                                            DaemonConfig base);
[[nodiscard]] Result<DaemonConfig> parse_daemon_config_text(std::string_view text, const std::string& source_name);
// Parses save_path for save_handler into config.store (files: sets
// scan.session_dir), reads auth_file, and picks the store's default
// rescan_interval. `where` prefixes errors ("file:line", "--save-path").
[[nodiscard]] Result<void> resolve_session_store(DaemonConfig& config, const std::string& where);

// Reads [cluster] auth_file into cluster.auth_password (no auth_file: nothing).
[[nodiscard]] Result<void> read_cluster_password(ClusterConfig& cluster);

// A missing file is an error only when required (an explicit --config).
[[nodiscard]] Result<DaemonConfig> load_daemon_config(const std::string& path, bool required);

}  // namespace coupecircuit
