#include "cluster_redis.hpp"

#include <algorithm>
#include <charconv>

namespace coupecircuit::cluster_redis {
namespace {

// The version of the stored state, 0 when none (or unreadable: then any
// write with the right expectation repairs it).
constexpr std::string_view kStoredVersion = R"lua(
local function stored_version(key)
  local current = redis.call('GET', key)
  if not current then return 0 end
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded.version) then return tonumber(decoded.version) end
  return 0
end
)lua";

// KEYS[1] control; ARGV[1] expected version, ARGV[2] new state, ARGV[3] channel.
constexpr std::string_view kWriteBody = R"lua(
local version = stored_version(KEYS[1])
if version ~= tonumber(ARGV[1]) then return {0, version} end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[2])
return {1, version}
)lua";

// KEYS[1] control; ARGV[1] our state, ARGV[2] its version, ARGV[3] channel.
constexpr std::string_view kRestoreBody = R"lua(
if stored_version(KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[3], ARGV[1])
return 1
)lua";

// KEYS[1] the node's key, KEYS[2] the nodes index; ARGV[1] node name,
// ARGV[2] its report, ARGV[3] TTL (ms), ARGV[4] forget after (ms).
constexpr std::string_view kHeartbeatScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[4]))
return redis.call('ZCOUNT', KEYS[2], now - tonumber(ARGV[3]), '+inf')
)lua";

// KEYS[1] the nodes index; ARGV[1] the node key prefix. Returns
// {now_ms, name, last_seen, report or false, …}; the node keys share the
// index's hash tag (same slot).
constexpr std::string_view kRegistryScript = R"lua(
local t = redis.call('TIME')
local out = {tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))}
local names = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #names, 2 do
  out[#out + 1] = names[i]
  out[#out + 1] = names[i + 1]
  out[#out + 1] = redis.call('GET', ARGV[1] .. names[i]) or ''
end
return out
)lua";

std::int64_t integer_of(const redisReply* reply) {
  if (reply->type == REDIS_REPLY_INTEGER) return reply->integer;
  if (reply->type != REDIS_REPLY_STRING) return 0;
  double value = 0;  // ZRANGE scores come back as text
  const std::string text = redis::reply_text(reply);
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  return parsed.ec == std::errc() ? static_cast<std::int64_t>(value) : 0;
}

Result<redis::Reply> checked(Result<redis::Reply> reply, const redis::SlotConnection& connection, std::string_view what) {
  if (!reply) return reply;
  if (redis::is_error(reply->get())) {
    return make_error(connection.where() + ": " + std::string(what) + ": " + redis::reply_text(reply->get()));
  }
  return reply;
}

}  // namespace

Result<std::optional<ClusterControl>> read_control(redis::SlotConnection& connection, const std::string& cluster,
                                                   bool* invalid) {
  const std::string key = control_key(cluster);
  auto reply = checked(connection.run({"GET", key}), connection, "GET " + key);
  if (!reply) return reply.error();
  if ((*reply)->type == REDIS_REPLY_NIL) return std::optional<ClusterControl>{};
  if ((*reply)->type != REDIS_REPLY_STRING) return make_error(connection.where() + ": GET " + key + ": unexpected reply");
  auto control = parse_cluster_control(redis::reply_text(reply->get()));
  if (!control) {
    if (invalid != nullptr) *invalid = true;
    return make_error(key + ": " + control.error().message);
  }
  return std::optional<ClusterControl>(std::move(*control));
}

Result<WriteOutcome> write_control(redis::SlotConnection& connection, const std::string& cluster, std::uint64_t expected,
                                   const ClusterControl& next, std::uint64_t* current) {
  const std::string script = std::string(kStoredVersion) + std::string(kWriteBody);
  const std::string expected_text = std::to_string(expected);
  const std::string text = serialize_cluster_control(next);
  const std::string key = control_key(cluster);
  const std::string channel = changes_channel(cluster);
  auto reply = checked(connection.run({"EVAL", script, "1", key, expected_text, text, channel}), connection,
                       "control state write");
  if (!reply) return reply.error();
  const redisReply* r = reply->get();
  if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) return make_error(connection.where() + ": unexpected reply to the write");
  *current = static_cast<std::uint64_t>(std::max<std::int64_t>(integer_of(r->element[1]), 0));
  return integer_of(r->element[0]) == 1 ? WriteOutcome::written : WriteOutcome::conflict;
}

Result<bool> restore_control(redis::SlotConnection& connection, const std::string& cluster, const ClusterControl& ours) {
  const std::string script = std::string(kStoredVersion) + std::string(kRestoreBody);
  const std::string text = serialize_cluster_control(ours);
  const std::string version = std::to_string(ours.version);
  const std::string key = control_key(cluster);
  const std::string channel = changes_channel(cluster);
  auto reply = checked(connection.run({"EVAL", script, "1", key, text, version, channel}), connection,
                       "control state restore");
  if (!reply) return reply.error();
  return (*reply)->type == REDIS_REPLY_INTEGER && (*reply)->integer == 1;
}

Result<std::uint32_t> heartbeat(redis::SlotConnection& connection, const std::string& cluster, const NodeReport& report,
                                std::uint64_t ttl_ms, std::uint64_t forget_ms) {
  const std::string key = node_key(cluster, report.node);
  const std::string index = nodes_index_key(cluster);
  const std::string record = serialize_node_report(report);
  const std::string ttl = std::to_string(ttl_ms);
  const std::string forget = std::to_string(forget_ms);
  auto reply = checked(connection.run({"EVAL", kHeartbeatScript, "2", key, index, report.node, record, ttl, forget}),
                       connection, "registry update");
  if (!reply) return reply.error();
  if ((*reply)->type != REDIS_REPLY_INTEGER) return make_error(connection.where() + ": unexpected reply to the registry update");
  return static_cast<std::uint32_t>(std::clamp<long long>((*reply)->integer, 0, UINT32_MAX));
}

Result<Registry> read_registry(redis::SlotConnection& connection, const std::string& cluster) {
  const std::string index = nodes_index_key(cluster);
  const std::string prefix = node_key(cluster, "");
  auto reply = checked(connection.run({"EVAL", kRegistryScript, "1", index, prefix}), connection, "registry read");
  if (!reply) return reply.error();
  const redisReply* r = reply->get();
  if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || (r->elements - 1) % 3 != 0) {
    return make_error(connection.where() + ": unexpected reply to the registry read");
  }
  Registry registry;
  registry.now_ms = integer_of(r->element[0]);
  for (std::size_t i = 1; i + 2 < r->elements; i += 3) {
    RegistryEntry entry;
    entry.node = redis::reply_text(r->element[i]);
    entry.last_seen_ms = integer_of(r->element[i + 1]);
    const std::string text = redis::reply_text(r->element[i + 2]);
    if (!text.empty()) {
      auto report = parse_node_report(text);
      if (report) {
        entry.report = std::move(*report);
      } else {
        entry.invalid = report.error().message;
      }
    }
    registry.nodes.push_back(std::move(entry));
  }
  return registry;
}

}  // namespace coupecircuit::cluster_redis
