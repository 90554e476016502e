#include "cluster_lease.hpp"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <sys/random.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <memory>

#include <nlohmann/json.hpp>

namespace coupecircuit::cluster {
namespace {

// KEYS: lease, fencing, counts. ARGV: value, ttl_ms.
// Reply: {state, holder value, fencing, pttl}; state 2 acquired now, 1 ours
// already (a renewal whose reply was lost), 0 held by another.
constexpr std::string_view kAcquire = R"lua(
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, current, tonumber(redis.call('GET', KEYS[2]) or '0'), tonumber(ARGV[2])}
end
if current then
  return {0, current, tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('PTTL', KEYS[1])}
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {0, '', 0, 0}
end
local fencing = redis.call('INCR', KEYS[2])
local published = tonumber(redis.call('HGET', KEYS[3], 'fencing') or '0')
if published >= fencing then
  fencing = published + 1
  redis.call('SET', KEYS[2], fencing)
end
return {2, ARGV[1], fencing, tonumber(ARGV[2])}
)lua";

// KEYS: lease. ARGV: value, ttl_ms. Reply: 1 renewed, 0 not ours.
constexpr std::string_view kRenew = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
)lua";

// KEYS: lease. ARGV: value. Reply: 1 released, 0 not ours.
constexpr std::string_view kRelease = R"lua(
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
)lua";

// KEYS: lease, counts. ARGV: value, fencing, counts JSON, holder node, keep_ms.
// Reply: {1, published_ms} | {0, stored fencing} | {-1, 0}.
constexpr std::string_view kPublish = R"lua(
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {-1, 0}
end
local stored = tonumber(redis.call('HGET', KEYS[2], 'fencing') or '0')
if tonumber(ARGV[2]) < stored then
  return {0, stored}
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('HSET', KEYS[2], 'fencing', ARGV[2], 'holder', ARGV[4], 'published_ms', ms, 'counts', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
return {1, ms}
)lua";

// KEYS: counts. Reply: {fencing, holder, published_ms, counts, now_ms}.
constexpr std::string_view kRead = R"lua(
local v = redis.call('HMGET', KEYS[1], 'fencing', 'holder', 'published_ms', 'counts')
local now = redis.call('TIME')
return {v[1] or '', v[2] or '', v[3] or '', v[4] or '', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)}
)lua";

// The published counts outlive their holder this long (a cluster taken
// apart leaves no key behind for ever); the fencing key stays.
constexpr std::uint64_t kCountsKeepMs = 24ULL * 3600 * 1000;

template <typename T>
bool parse_number(std::string_view text, T* out) noexcept {
  if (text.empty()) return false;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return error == std::errc() && end == text.data() + text.size();
}

Error reply_error(std::string_view script, std::string_view why) {
  return make_error("lease script " + std::string(script) + ": " + std::string(why));
}

}  // namespace

LeaseKeys LeaseKeys::for_cluster(std::string_view cluster) {
  const std::string base = "coupecircuit:{" + std::string(cluster) + "}:";
  return LeaseKeys{base + "lease", base + "fencing", base + "counts"};
}

const LuaScript& acquire_script() {
  static const LuaScript script{"acquire", kAcquire};
  return script;
}
const LuaScript& renew_script() {
  static const LuaScript script{"renew", kRenew};
  return script;
}
const LuaScript& release_script() {
  static const LuaScript script{"release", kRelease};
  return script;
}
const LuaScript& publish_script() {
  static const LuaScript script{"publish", kPublish};
  return script;
}
const LuaScript& read_script() {
  static const LuaScript script{"read", kRead};
  return script;
}

std::string random_token() {
  std::array<unsigned char, 8> bytes{};
  std::size_t got = 0;
  while (got < bytes.size()) {
    const ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  for (const unsigned char byte : bytes) {
    token += kHex[byte >> 4U];
    token += kHex[byte & 0xFU];
  }
  return token;
}

std::string_view node_of_value(std::string_view value) noexcept {
  const auto colon = value.rfind(':');
  return colon == std::string_view::npos ? value : value.substr(0, colon);
}

// ---------------------------------------------------------------- counts

std::string counts_to_json(const ClusterCounts& c) {
  nlohmann::json out = {
      {"active", c.counts.active},
      {"inactive", c.counts.inactive},
      {"inactive_unread", c.counts.inactive_unread},
      {"keys_seen", c.counts.files_seen},
      {"masters_reached", c.masters_reached},
      {"masters_total", c.masters_total},
      {"last_pass_wall_ns", c.last_pass_wall_ns},
      {"last_pass_duration_us", c.last_pass_duration_us},
      {"values_read", c.values_read},
      {"bytes_read", c.bytes_read},
      {"notifications", c.notifications},
      {"available", c.available},
      {"unavailable_since_wall_s", c.unavailable_since_wall_s},
  };
  return out.dump();
}

namespace {

template <typename T>
bool take(const nlohmann::json& object, const char* name, T* out) {
  const auto it = object.find(name);
  if (it == object.end()) return false;
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean()) return false;
    *out = it->get<bool>();
    return true;
  } else if constexpr (std::is_signed_v<T>) {
    if (!it->is_number_integer()) return false;
    *out = it->get<T>();
    return true;
  } else {
    if (!it->is_number_unsigned()) return false;
    const auto value = it->get<std::uint64_t>();
    if (value > std::numeric_limits<T>::max()) return false;
    *out = static_cast<T>(value);
    return true;
  }
}

bool take_classes(const nlohmann::json& object, const char* name, std::array<std::uint64_t, kSessionClassCount>* out) {
  const auto it = object.find(name);
  if (it == object.end() || !it->is_array() || it->size() != kSessionClassCount) return false;
  for (std::size_t i = 0; i < kSessionClassCount; ++i) {
    if (!(*it)[i].is_number_unsigned()) return false;
    (*out)[i] = (*it)[i].get<std::uint64_t>();
  }
  return true;
}

}  // namespace

Result<ClusterCounts> counts_from_json(std::string_view text) {
  if (text.size() > kMaxCountsJsonBytes) return make_error("counts larger than " + std::to_string(kMaxCountsJsonBytes) + " bytes");
  const auto parsed = nlohmann::json::parse(text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return make_error("counts are not a JSON object");
  ClusterCounts c;
  const bool ok = take_classes(parsed, "active", &c.counts.active) && take_classes(parsed, "inactive", &c.counts.inactive) &&
                  take(parsed, "inactive_unread", &c.counts.inactive_unread) &&
                  take(parsed, "keys_seen", &c.counts.files_seen) && take(parsed, "masters_reached", &c.masters_reached) &&
                  take(parsed, "masters_total", &c.masters_total) &&
                  take(parsed, "last_pass_wall_ns", &c.last_pass_wall_ns) &&
                  take(parsed, "last_pass_duration_us", &c.last_pass_duration_us) &&
                  take(parsed, "values_read", &c.values_read) && take(parsed, "bytes_read", &c.bytes_read) &&
                  take(parsed, "notifications", &c.notifications) && take(parsed, "available", &c.available) &&
                  take(parsed, "unavailable_since_wall_s", &c.unavailable_since_wall_s);
  if (!ok) return make_error("counts lack a field or hold a wrong type");
  if (c.masters_reached > c.masters_total) return make_error("counts: more masters reached than there are");
  return c;
}

// ---------------------------------------------------------------- lease

Lease::Lease(LeaseSettings settings) : settings_(std::move(settings)), keys_(LeaseKeys::for_cluster(settings_.cluster)) {
  if (settings_.token.empty()) settings_.token = random_token();
  settings_.ttl_ms = std::clamp(settings_.ttl_ms, kMinLeaseTtlMs, kMaxLeaseTtlMs);
  value_ = settings_.node + ":" + settings_.token;
}

void Lease::drop(std::uint64_t now_ms) noexcept {
  holding_ = false;
  valid_until_ms_ = 0;
  holder_.clear();  // unknown until Redis answers again
  (void)now_ms;
}

Result<void> Lease::step(const ScriptRunner& run, std::uint64_t now_ms) {
  const std::uint64_t third = settings_.ttl_ms / 3;
  // Until this step succeeds, try again soon (a third of a third).
  next_step_ms_ = now_ms + std::max<std::uint64_t>(third / 3, 100);
  if (holding_ && now_ms >= valid_until_ms_) drop(now_ms);  // not renewed in time: it may be someone else's
  return holding_ ? renew(run, now_ms) : acquire(run, now_ms);
}

Result<void> Lease::renew(const ScriptRunner& run, std::uint64_t now_ms) {
  auto reply = run(renew_script(), {keys_.lease}, {value_, std::to_string(settings_.ttl_ms)});
  if (!reply) return reply.error();
  if (reply->size() != 1) return reply_error("renew", "unexpected reply");
  if ((*reply)[0] != "1") {
    // Expired (a long pause, Redis lost it) or taken: try to acquire at once.
    holding_ = false;
    holder_.clear();
    return acquire(run, now_ms);
  }
  // Valid for the TTL counted from when the renewal was sent.
  valid_until_ms_ = now_ms + settings_.ttl_ms;
  next_step_ms_ = now_ms + settings_.ttl_ms / 3;
  return {};
}

Result<void> Lease::acquire(const ScriptRunner& run, std::uint64_t now_ms) {
  auto reply = run(acquire_script(), {keys_.lease, keys_.fencing, keys_.counts},
                   {value_, std::to_string(settings_.ttl_ms)});
  if (!reply) return reply.error();
  if (reply->size() != 4) return reply_error("acquire", "unexpected reply");
  const auto& r = *reply;
  std::uint64_t fencing = 0;
  std::int64_t pttl = 0;
  if (!parse_number(r[2], &fencing) || !parse_number(r[3], &pttl)) return reply_error("acquire", "unexpected reply");
  holder_ = std::string(node_of_value(r[1]));
  if (r[0] == "2" || r[0] == "1") {
    holding_ = true;
    fencing_ = fencing;
    valid_until_ms_ = now_ms + settings_.ttl_ms;
    next_step_ms_ = now_ms + settings_.ttl_ms / 3;
    return {};
  }
  holding_ = false;
  // Held by another: try again just after it would expire, and at least
  // every third of the TTL (a release is seen then).
  // (A key without expiry, set by hand, is tried again at that pace too.)
  const std::uint64_t until_expiry = pttl > 0 ? static_cast<std::uint64_t>(pttl) + 10 : settings_.ttl_ms / 3;
  next_step_ms_ = now_ms + std::min<std::uint64_t>(until_expiry, settings_.ttl_ms / 3);
  return {};
}

Result<Lease::PublishOutcome> Lease::publish(const ScriptRunner& run, const ClusterCounts& counts, std::uint64_t now_ms) {
  if (!holding(now_ms)) return PublishOutcome::not_holder;
  auto reply = run(publish_script(), {keys_.lease, keys_.counts},
                   {value_, std::to_string(fencing_), counts_to_json(counts), settings_.node, std::to_string(kCountsKeepMs)});
  if (!reply) return reply.error();
  if (reply->size() != 2) return reply_error("publish", "unexpected reply");
  if ((*reply)[0] == "1") {
    if (!parse_number((*reply)[1], &last_published_ms_)) return reply_error("publish", "unexpected reply");
    return PublishOutcome::published;
  }
  drop(now_ms);
  next_step_ms_ = now_ms;
  return (*reply)[0] == "0" ? PublishOutcome::lower_fencing : PublishOutcome::not_holder;
}

Result<void> Lease::release(const ScriptRunner& run) {
  if (!holding_) return {};
  holding_ = false;
  auto reply = run(release_script(), {keys_.lease}, {value_});
  if (!reply) return reply.error();
  holder_.clear();
  return {};
}

// ---------------------------------------------------------------- reader

std::uint64_t CountsReader::age_ms(std::uint64_t now_ms) const noexcept {
  if (!current_) return std::numeric_limits<std::uint64_t>::max();
  return current_->age_ms + (now_ms > current_->read_at_ms ? now_ms - current_->read_at_ms : 0);
}

Result<CountsReader::ReadOutcome> CountsReader::read(const ScriptRunner& run, std::uint64_t now_ms) {
  auto reply = run(read_script(), {keys_.counts}, {});
  if (!reply) return reply.error();
  if (reply->size() != 5) return reply_error("read", "unexpected reply");
  const auto& r = *reply;
  if (r[0].empty()) return ReadOutcome::none;
  PeerCounts peer;
  std::int64_t redis_now_ms = 0;
  if (!parse_number(r[0], &peer.fencing) || !parse_number(r[2], &peer.published_ms) || !parse_number(r[4], &redis_now_ms)) {
    last_invalid_ = "the counts' fencing or time is not a number";
    return ReadOutcome::invalid;
  }
  auto counts = counts_from_json(r[3]);
  if (!counts) {
    last_invalid_ = counts.error().message;
    return ReadOutcome::invalid;
  }
  if (current_ && peer.fencing < current_->fencing && fresh(now_ms)) return ReadOutcome::lower_fencing;
  peer.counts = *counts;
  peer.holder = r[1].substr(0, 63);
  peer.age_ms = redis_now_ms > peer.published_ms ? static_cast<std::uint64_t>(redis_now_ms - peer.published_ms) : 0;
  peer.read_at_ms = now_ms;
  current_ = std::move(peer);
  return ReadOutcome::used;
}

}  // namespace coupecircuit::cluster

namespace coupecircuit::cluster {
namespace {

std::string text_of(const redisReply* reply) {
  return reply->str != nullptr ? std::string(reply->str, reply->len) : std::string();
}

std::string flatten_one(const redisReply* reply) {
  switch (reply->type) {
    case REDIS_REPLY_INTEGER: return std::to_string(reply->integer);
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS: return text_of(reply);
    default: return {};
  }
}

// A script's reply: an array's elements, or the one value.
ScriptReply flatten(const redisReply* reply) {
  ScriptReply out;
  if (reply->type != REDIS_REPLY_ARRAY) {
    out.push_back(flatten_one(reply));
    return out;
  }
  for (std::size_t i = 0; i < reply->elements; ++i) out.push_back(flatten_one(reply->element[i]));
  return out;
}

}  // namespace

ScriptCache::Send send_on(redisContext* context) {
  return [context](const std::vector<std::string_view>& words) -> Result<redis::Reply> {
    if (context == nullptr) return make_error("not connected");
    redis::Reply reply = redis::command(context, words);
    if (!reply) return make_error(redis::connection_error(context));
    return reply;
  };
}

Result<std::string> ScriptCache::sha_of(const LuaScript& script) {
  if (const auto known = loaded_.find(script.name); known != loaded_.end()) return known->second;
  ++commands_sent_;
  auto loaded = send_({"SCRIPT", "LOAD", script.source});
  if (!loaded) return loaded.error();
  if ((*loaded)->type != REDIS_REPLY_STRING) return make_error("SCRIPT LOAD refused: " + text_of(loaded->get()));
  return loaded_.emplace(script.name, text_of(loaded->get())).first->second;
}

Result<ScriptReply> ScriptCache::run(const LuaScript& script, const std::vector<std::string>& keys,
                                     const std::vector<std::string>& args) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto sha = sha_of(script);
    if (!sha) return sha.error();
    const std::string count = std::to_string(keys.size());
    std::vector<std::string_view> words{"EVALSHA", *sha, count};
    words.insert(words.end(), keys.begin(), keys.end());
    words.insert(words.end(), args.begin(), args.end());
    ++commands_sent_;
    auto reply = send_(words);
    if (!reply) return reply.error();
    if ((*reply)->type != REDIS_REPLY_ERROR) return flatten(reply->get());
    const std::string error = text_of(reply->get());
    if (error.rfind("NOSCRIPT", 0) != 0) return make_error("lease script " + std::string(script.name) + ": " + error);
    loaded_.erase(script.name);  // the server forgot it (restart, failover, SCRIPT FLUSH)
  }
  return make_error("lease script " + std::string(script.name) + ": NOSCRIPT twice");
}

}  // namespace coupecircuit::cluster
