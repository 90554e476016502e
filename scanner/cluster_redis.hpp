// The cluster's Redis operations, one implementation for coupecircuitd (the
// cluster link) and coupecircuitctl: each is one command (a Lua script where
// several keys move together) on the connection to the master owning the
// cluster's hash slot. Key names: common/cluster_control.hpp.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cluster_control.hpp"
#include "redis_connection.hpp"
#include "result.hpp"

namespace coupecircuit::cluster_redis {

// The control state in Redis (nullopt: never written). An invalid stored
// state is an error naming why, with *invalid set (when given).
[[nodiscard]] Result<std::optional<ClusterControl>> read_control(redis::SlotConnection& connection,
                                                                 const std::string& cluster, bool* invalid = nullptr);

// Compare-and-set: writes `next` (whose version must be above `expected`)
// and publishes it on the changes channel when the stored version is still
// `expected` (0: no state stored). Otherwise nothing is written and the
// stored version is returned in *current.
enum class WriteOutcome : std::uint8_t { written, conflict };
[[nodiscard]] Result<WriteOutcome> write_control(redis::SlotConnection& connection, const std::string& cluster,
                                                 std::uint64_t expected, const ClusterControl& next,
                                                 std::uint64_t* current);

// Writes `ours` back when Redis holds no control state or an older version
// (Redis restarted empty, a failover lost the last write), and publishes it.
// True when it was written.
[[nodiscard]] Result<bool> restore_control(redis::SlotConnection& connection, const std::string& cluster,
                                           const ClusterControl& ours);

// Refreshes a node's registry entry (TTL ttl_ms) and returns the number of
// live nodes. Times are Redis's own clock (TIME), not the nodes'.
[[nodiscard]] Result<std::uint32_t> heartbeat(redis::SlotConnection& connection, const std::string& cluster,
                                              const NodeReport& report, std::uint64_t ttl_ms, std::uint64_t forget_ms);

struct RegistryEntry {
  std::string node;
  std::int64_t last_seen_ms = 0;     // Redis time of its last heartbeat
  std::optional<NodeReport> report;  // nullopt: the entry expired (the node is gone or stalled)
  std::string invalid;               // why a stored report could not be read
};
struct Registry {
  std::int64_t now_ms = 0;  // Redis time of the read
  std::vector<RegistryEntry> nodes;
};
[[nodiscard]] Result<Registry> read_registry(redis::SlotConnection& connection, const std::string& cluster);

}  // namespace coupecircuit::cluster_redis
