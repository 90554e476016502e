// One session pass per cluster: a lease in the cluster's Redis decides which
// helper counts the sessions kept in Redis; the others read its result.
//
//   coupecircuit:{<cluster>}:lease     "<node>:<token>", SET NX PX ttl
//   coupecircuit:{<cluster>}:fencing   INCR on every acquisition
//   coupecircuit:{<cluster>}:counts    hash: fencing, holder, published_ms, counts (JSON)
//
// Every operation is one Lua script (the hash tag puts the keys in one slot
// of a Redis Cluster): acquire (SET NX PX, then INCR of the fencing number,
// never below the fencing of the counts already published), compare-and-renew
// and compare-and-release by the holder only, publish (refused unless the
// caller still holds the lease and its fencing is not lower than the stored
// one) and read. Publish and read stamp and compare times with Redis's own
// clock (TIME), so the age of a result does not depend on the nodes' clocks;
// locally, time only moves on the monotonic clock.
//
// The classes here do no I/O of their own: they run scripts through a
// ScriptRunner (the daemon's worker gives one over its Redis connection, the
// tests one over a real redis-server).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "redis_connection.hpp"
#include "result.hpp"
#include "session_scanner.hpp"

namespace coupecircuit::cluster {

inline constexpr std::uint32_t kDefaultLeaseTtlMs = 6000;
inline constexpr std::uint32_t kMinLeaseTtlMs = 1000;
inline constexpr std::uint32_t kMaxLeaseTtlMs = 300'000;
// The holder republishes unchanged counts this often; a reader treats counts
// older than a limit (default 3 x this period) as missing.
inline constexpr std::uint32_t kCountsRefreshMs = 1000;  // changed counts: at most one publish per second
// Counts larger than this in Redis are refused (the hash is shared with
// every node: it is read as untrusted input).
inline constexpr std::size_t kMaxCountsJsonBytes = 4096;

struct LeaseKeys {
  std::string lease;
  std::string fencing;
  std::string counts;
  [[nodiscard]] static LeaseKeys for_cluster(std::string_view cluster);
};

// A Lua script. Runners send it with EVALSHA, the SHA-1 being the one
// SCRIPT LOAD returned on that connection (again after a NOSCRIPT).
struct LuaScript {
  std::string_view name;
  std::string_view source;
};
[[nodiscard]] const LuaScript& acquire_script();
[[nodiscard]] const LuaScript& renew_script();
[[nodiscard]] const LuaScript& release_script();
[[nodiscard]] const LuaScript& publish_script();
[[nodiscard]] const LuaScript& read_script();

// A script's reply, flattened: integers rendered in decimal, nil as "".
using ScriptReply = std::vector<std::string>;
// Runs a script (one round trip); an error says what failed, never a secret.
using ScriptRunner = std::function<Result<ScriptReply>(const LuaScript& script, const std::vector<std::string>& keys,
                                                       const std::vector<std::string>& args)>;

// Scripts over one Redis connection: EVALSHA with the SHA-1 SCRIPT LOAD
// returned (loaded again after a NOSCRIPT: a restarted or failed-over
// server, SCRIPT FLUSH). `send` runs one command (the cluster link's
// SlotConnection::run, which follows MOVED; a plain connection in tests).
class ScriptCache {
 public:
  using Send = std::function<Result<redis::Reply>(const std::vector<std::string_view>& words)>;
  explicit ScriptCache(Send send) : send_(std::move(send)) {}
  Result<ScriptReply> run(const LuaScript& script, const std::vector<std::string>& keys, const std::vector<std::string>& args);
  [[nodiscard]] ScriptRunner runner() {
    return [this](const LuaScript& script, const std::vector<std::string>& keys, const std::vector<std::string>& args) {
      return run(script, keys, args);
    };
  }
  // Commands sent so far (the budget of commands per second).
  [[nodiscard]] std::uint64_t commands_sent() const noexcept { return commands_sent_; }

 private:
  [[nodiscard]] Result<std::string> sha_of(const LuaScript& script);

  Send send_;
  std::map<std::string_view, std::string> loaded_;  // script name -> SHA-1
  std::uint64_t commands_sent_ = 0;
};
// A Send over one plain hiredis connection.
[[nodiscard]] ScriptCache::Send send_on(redisContext* context);

// The session figures the holder publishes: what a snapshot shows of the
// session store.
struct ClusterCounts {
  SessionCounts counts;  // counts.files_seen: the keys seen
  std::uint32_t masters_reached = 0;
  std::uint32_t masters_total = 0;
  std::int64_t last_pass_wall_ns = 0;
  std::uint64_t last_pass_duration_us = 0;
  std::uint64_t values_read = 0;
  std::uint64_t bytes_read = 0;
  bool notifications = false;
  // The holder could not count (its session store is unreachable): every
  // node flags sessions unknown at once instead of waiting for the counts
  // to go stale.
  bool available = true;
  std::int64_t unavailable_since_wall_s = 0;
  bool operator==(const ClusterCounts&) const = default;
};
[[nodiscard]] std::string counts_to_json(const ClusterCounts& counts);
// Strict: every field present with the right type and range.
[[nodiscard]] Result<ClusterCounts> counts_from_json(std::string_view text);

struct LeaseSettings {
  std::string cluster;
  std::string node;
  std::uint32_t ttl_ms = kDefaultLeaseTtlMs;
  std::string token;  // empty: a random one
};

// The lease seen from one node. Not thread-safe: one owner drives it.
class Lease {
 public:
  explicit Lease(LeaseSettings settings);

  // One step at monotonic time now_ms: renew when holding, else try to
  // acquire. A Redis failure keeps the lease locally only until the TTL of
  // the last successful renewal runs out (counted from when that renewal was
  // sent).
  Result<void> step(const ScriptRunner& run, std::uint64_t now_ms);
  // When the next step is due: a third of the TTL while holding; while
  // another node holds it, just after its lease would expire (at most a
  // third of the TTL away).
  [[nodiscard]] std::uint64_t next_step_ms() const noexcept { return next_step_ms_; }

  enum class PublishOutcome : std::uint8_t { published, lower_fencing, not_holder };
  // Publishes counts stamped with this lease's fencing; anything but
  // `published` means the lease was lost (and is dropped here).
  Result<PublishOutcome> publish(const ScriptRunner& run, const ClusterCounts& counts, std::uint64_t now_ms);
  // Compare-and-delete on a clean stop.
  Result<void> release(const ScriptRunner& run);

  [[nodiscard]] bool holding(std::uint64_t now_ms) const noexcept { return holding_ && now_ms < valid_until_ms_; }
  [[nodiscard]] std::uint64_t valid_until_ms() const noexcept { return holding_ ? valid_until_ms_ : 0; }
  [[nodiscard]] std::uint64_t fencing() const noexcept { return fencing_; }
  // The holder's node name as last seen ("" when nobody holds it).
  [[nodiscard]] const std::string& holder() const noexcept { return holder_; }
  [[nodiscard]] const std::string& value() const noexcept { return value_; }
  [[nodiscard]] std::int64_t last_published_ms() const noexcept { return last_published_ms_; }
  [[nodiscard]] const LeaseKeys& keys() const noexcept { return keys_; }
  [[nodiscard]] const LeaseSettings& settings() const noexcept { return settings_; }
  // Forget the lease locally (the connection was lost beyond its TTL).
  void drop(std::uint64_t now_ms) noexcept;

 private:
  Result<void> renew(const ScriptRunner& run, std::uint64_t now_ms);
  Result<void> acquire(const ScriptRunner& run, std::uint64_t now_ms);

  LeaseSettings settings_;
  LeaseKeys keys_;
  std::string value_;  // "<node>:<token>"
  bool holding_ = false;
  std::uint64_t valid_until_ms_ = 0;
  std::uint64_t fencing_ = 0;
  std::string holder_;
  std::uint64_t next_step_ms_ = 0;
  std::int64_t last_published_ms_ = 0;
};

// The counts a node uses, read from Redis.
struct PeerCounts {
  ClusterCounts counts;
  std::uint64_t fencing = 0;
  std::string holder;
  std::int64_t published_ms = 0;  // Redis's clock when they were published
  std::uint64_t age_ms = 0;       // at the read that brought them, on Redis's clock
  std::uint64_t read_at_ms = 0;   // monotonic time of that read
};

// Reads the published counts; keeps the ones in use and their age.
class CountsReader {
 public:
  CountsReader(LeaseKeys keys, std::uint32_t stale_after_ms) : keys_(std::move(keys)), stale_after_ms_(stale_after_ms) {}

  enum class ReadOutcome : std::uint8_t { used, none, lower_fencing, invalid };
  // A result with a lower fencing than the one in use is ignored while the
  // one in use is fresh (a lagging replica, a deposed holder); once the one
  // in use is stale it is taken (the fencing number was lost with Redis's
  // data: counting must not stop for good).
  Result<ReadOutcome> read(const ScriptRunner& run, std::uint64_t now_ms);
  // The counts in use, if any, with their age at now_ms.
  [[nodiscard]] const std::optional<PeerCounts>& current() const noexcept { return current_; }
  [[nodiscard]] std::uint64_t age_ms(std::uint64_t now_ms) const noexcept;
  [[nodiscard]] bool fresh(std::uint64_t now_ms) const noexcept {
    return current_.has_value() && age_ms(now_ms) <= stale_after_ms_;
  }
  [[nodiscard]] std::string last_invalid() const { return last_invalid_; }

 private:
  LeaseKeys keys_;
  std::uint32_t stale_after_ms_;
  std::optional<PeerCounts> current_;
  std::string last_invalid_;
};

// A random lease token: 16 hex digits from the kernel's random source.
[[nodiscard]] std::string random_token();
// The node part of a lease value "<node>:<token>".
[[nodiscard]] std::string_view node_of_value(std::string_view value) noexcept;

}  // namespace coupecircuit::cluster
