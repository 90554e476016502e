// The one Redis connection code of coupecircuitd and coupecircuitctl (hiredis
// 0.14, which has neither Cluster nor TLS support): connect with timeouts,
// AUTH (ACL user or password; the password from an auth_file replaces auth=),
// SELECT, Redis Cluster topology from CLUSTER SLOTS, the hash slot of a key,
// and a connection to the master owning one slot that follows MOVED. Used by
// the session store (scanner/redis_store.cpp) and the cluster link
// (scanner/cluster_link.cpp, ctl).
//
// Errors name the server ("host:port" or "unix:/path") and never carry a
// password (Redis's replies to AUTH do not echo it).
#pragma once

#include <hiredis/hiredis.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"
#include "save_path.hpp"

namespace coupecircuit::redis {

struct ContextDeleter {
  void operator()(redisContext* context) const noexcept { redisFree(context); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

inline constexpr std::uint32_t kClusterSlots = 16384;

// One command, waiting for its reply (null: I/O error or timeout, see
// connection_error).
[[nodiscard]] Reply command(redisContext* context, const std::vector<std::string_view>& words);
// Pipelining: queue a command (at most 8 words), read replies in order.
void append(redisContext* context, std::initializer_list<std::string_view> words);
void append(redisContext* context, const std::vector<std::string_view>& words);
[[nodiscard]] Reply next_reply(redisContext* context);

[[nodiscard]] std::string connection_error(const redisContext* context);
[[nodiscard]] std::string reply_text(const redisReply* reply);
[[nodiscard]] bool is_error(const redisReply* reply) noexcept;
[[nodiscard]] bool is_redirect(const redisReply* reply) noexcept;  // MOVED or ASK
[[nodiscard]] bool is_wrong_type(const redisReply* reply) noexcept;

// Who to authenticate as, and the database to select (0: none).
struct Credentials {
  std::string user;      // ACL user, else empty
  std::string password;  // empty: no AUTH
  std::uint32_t database = 0;
};
// The credentials of a save_path target; a non-empty auth_file password
// replaces its auth=.
[[nodiscard]] Credentials credentials_of(const RedisTarget& target, const std::string& auth_file_password);

// Connects with `timeout_ms` for the connection and for every command,
// authenticates and selects the database when `select`. `where` names the
// setting that holds the password in the AUTH failure message.
[[nodiscard]] Result<Context> connect(const RedisEndpoint& endpoint, const Credentials& credentials,
                                      std::uint32_t timeout_ms, bool select, std::string_view password_setting);

struct SlotRange {
  std::uint32_t first = 0;
  std::uint32_t last = 0;
  std::size_t master = 0;  // index in ClusterTopology::masters
};

struct ClusterTopology {
  std::vector<RedisEndpoint> masters;  // each once
  std::vector<RedisEndpoint> nodes;    // masters and replicas, for the next discovery
  std::vector<SlotRange> ranges;
  std::uint64_t slots_covered = 0;
  [[nodiscard]] const RedisEndpoint* owner_of(std::uint32_t slot) const noexcept;
};

// Parses a CLUSTER SLOTS reply; `asked` fills in a node announced without
// an address ("" or "?").
[[nodiscard]] Result<ClusterTopology> parse_cluster_slots(const redisReply& reply, const RedisEndpoint& asked);
// Asks the candidates in turn (each once) for CLUSTER SLOTS: the first
// answer wins. The error is the first failure met.
[[nodiscard]] Result<ClusterTopology> discover_cluster(const std::vector<RedisEndpoint>& candidates,
                                                       const Credentials& credentials, std::uint32_t timeout_ms,
                                                       std::string_view password_setting);

// The Redis Cluster hash slot of a key (CRC16 of its hash tag {…} if any).
[[nodiscard]] std::uint32_t key_slot(std::string_view key) noexcept;

// Exponential backoff between reconnection attempts.
class Backoff {
 public:
  Backoff(std::uint64_t min_ms, std::uint64_t max_ms) noexcept : min_ms_(min_ms), max_ms_(max_ms), next_ms_(min_ms) {}
  // The delay before the next attempt (then doubled, up to the maximum).
  std::uint64_t next() noexcept;
  void reset() noexcept { next_ms_ = min_ms_; }

 private:
  std::uint64_t min_ms_;
  std::uint64_t max_ms_;
  std::uint64_t next_ms_;
};

// Where a SlotConnection connects: one server, or a Redis Cluster's seeds.
struct ServerSettings {
  SaveHandler handler = SaveHandler::redis;  // redis: endpoints.front(); rediscluster: seeds
  std::vector<RedisEndpoint> endpoints;
  Credentials credentials;
  std::uint32_t timeout_ms = 1000;
  std::string password_setting = "auth_file";  // named when AUTH fails
  bool operator==(const ServerSettings& other) const {
    return handler == other.handler && endpoints == other.endpoints && credentials.user == other.credentials.user &&
           credentials.password == other.credentials.password && credentials.database == other.credentials.database &&
           timeout_ms == other.timeout_ms && password_setting == other.password_setting;
  }
};

// A connection to the master that owns the slot of `routing_key` (a
// standalone server: the server itself). In a Cluster, every key with the
// same hash tag lives there, so one connection serves them all (and one Lua
// script may touch several). Not thread-safe: one owner thread.
class SlotConnection {
 public:
  SlotConnection(ServerSettings settings, std::string routing_key);

  // Connects when not connected (a Cluster: asks CLUSTER SLOTS first).
  [[nodiscard]] Result<void> ensure();
  // One command; on MOVED, reconnects to the named master and sends it
  // again (once). A null reply or an I/O error drops the connection; the
  // error says why.
  [[nodiscard]] Result<Reply> run(const std::vector<std::string_view>& words);
  // Another connection to the same server (e.g. for SUBSCRIBE).
  [[nodiscard]] Result<Context> open_another() const;
  void reset() noexcept { context_.reset(); }
  [[nodiscard]] bool connected() const noexcept { return context_ != nullptr; }
  [[nodiscard]] redisContext* get() const noexcept { return context_.get(); }
  [[nodiscard]] const RedisEndpoint& endpoint() const noexcept { return endpoint_; }
  [[nodiscard]] const ServerSettings& settings() const noexcept { return settings_; }
  [[nodiscard]] std::string where() const;  // "host:port", or the seeds when not connected yet

 private:
  [[nodiscard]] Result<void> connect_to(const RedisEndpoint& endpoint);
  [[nodiscard]] Result<void> follow_moved(std::string_view moved);

  ServerSettings settings_;
  std::string routing_key_;
  std::vector<RedisEndpoint> known_nodes_;  // from the last CLUSTER SLOTS
  RedisEndpoint endpoint_;
  Context context_;
};

}  // namespace coupecircuit::redis
