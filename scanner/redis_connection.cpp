#include "redis_connection.hpp"

#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <set>

namespace coupecircuit::redis {
namespace {

timeval timeval_of(std::uint32_t ms) noexcept {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  return tv;
}

bool starts_with(std::string_view text, std::string_view prefix) noexcept { return text.substr(0, prefix.size()) == prefix; }

// One node of a CLUSTER SLOTS range: [ip, port, id, …].
bool node_of(const redisReply* node, const RedisEndpoint& asked, RedisEndpoint* out) {
  if (node == nullptr || node->type != REDIS_REPLY_ARRAY || node->elements < 2) return false;
  const redisReply* ip = node->element[0];
  const redisReply* port = node->element[1];
  if (ip->type != REDIS_REPLY_STRING || port->type != REDIS_REPLY_INTEGER || port->integer <= 0 ||
      port->integer > 65535) {
    return false;
  }
  const std::string_view host(ip->str, ip->len);
  out->host = !host.empty() && host != "?" ? std::string(host) : asked.host;
  out->port = static_cast<std::uint16_t>(port->integer);
  out->socket_path.clear();
  return true;
}

template <typename T>
std::size_t index_adding(std::vector<T>& list, const T& value) {
  const auto found = std::find(list.begin(), list.end(), value);
  if (found != list.end()) return static_cast<std::size_t>(found - list.begin());
  list.push_back(value);
  return list.size() - 1;
}

// "MOVED 3999 127.0.0.1:6381" → the endpoint.
Result<RedisEndpoint> moved_target(std::string_view text) {
  const auto space = text.rfind(' ');
  const auto colon = text.rfind(':');
  if (space == std::string_view::npos || colon == std::string_view::npos || colon < space) {
    return make_error("unexpected redirection \"" + std::string(text) + "\"");
  }
  RedisEndpoint endpoint;
  endpoint.host = std::string(text.substr(space + 1, colon - space - 1));
  unsigned port = 0;
  const std::string_view digits = text.substr(colon + 1);
  const auto parsed = std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (parsed.ec != std::errc() || port == 0 || port > 65535) return make_error("bad port in \"" + std::string(text) + "\"");
  endpoint.port = static_cast<std::uint16_t>(port);
  return endpoint;
}

}  // namespace

Reply command(redisContext* context, const std::vector<std::string_view>& words) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  argv.reserve(words.size());
  lengths.reserve(words.size());
  for (const auto word : words) {
    argv.push_back(word.data());
    lengths.push_back(word.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
}

void append(redisContext* context, std::initializer_list<std::string_view> words) {
  std::array<const char*, 8> argv{};
  std::array<std::size_t, 8> lengths{};
  std::size_t count = 0;
  for (const auto word : words) {
    if (count == argv.size()) break;
    argv[count] = word.data();
    lengths[count] = word.size();
    ++count;
  }
  redisAppendCommandArgv(context, static_cast<int>(count), argv.data(), lengths.data());
}

void append(redisContext* context, const std::vector<std::string_view>& words) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto word : words) {
    argv.push_back(word.data());
    lengths.push_back(word.size());
  }
  redisAppendCommandArgv(context, static_cast<int>(argv.size()), argv.data(), lengths.data());
}

Reply next_reply(redisContext* context) {
  void* raw = nullptr;
  if (redisGetReply(context, &raw) != REDIS_OK) return nullptr;
  return Reply(static_cast<redisReply*>(raw));
}

std::string connection_error(const redisContext* context) {
  if (context == nullptr) return "out of memory";
  if (context->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) return "timed out";
  return context->errstr[0] != '\0' ? std::string(context->errstr) : "connection error";
}

std::string reply_text(const redisReply* reply) {
  if (reply == nullptr || reply->str == nullptr) return {};
  return std::string(reply->str, reply->len);
}

bool is_error(const redisReply* reply) noexcept { return reply != nullptr && reply->type == REDIS_REPLY_ERROR; }

bool is_redirect(const redisReply* reply) noexcept {
  if (!is_error(reply) || reply->str == nullptr) return false;
  const std::string_view text(reply->str, reply->len);
  return starts_with(text, "MOVED ") || starts_with(text, "ASK ");
}

bool is_wrong_type(const redisReply* reply) noexcept {
  return is_error(reply) && reply->str != nullptr && starts_with(std::string_view(reply->str, reply->len), "WRONGTYPE");
}

Credentials credentials_of(const RedisTarget& target, const std::string& auth_file_password) {
  Credentials credentials;
  credentials.user = target.user;
  credentials.password = auth_file_password.empty() ? target.password : auth_file_password;
  credentials.database = target.database;
  return credentials;
}

Result<Context> connect(const RedisEndpoint& endpoint, const Credentials& credentials, std::uint32_t timeout_ms,
                        bool select, std::string_view password_setting) {
  const timeval timeout = timeval_of(timeout_ms);
  Context context(endpoint.socket_path.empty()
                      ? redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, timeout)
                      : redisConnectUnixWithTimeout(endpoint.socket_path.c_str(), timeout));
  if (!context || context->err != 0) {
    return make_error(to_string(endpoint) + ": cannot connect: " + connection_error(context.get()));
  }
  redisSetTimeout(context.get(), timeout);
  if (!credentials.password.empty()) {
    Reply reply = credentials.user.empty() ? command(context.get(), {"AUTH", credentials.password})
                                           : command(context.get(), {"AUTH", credentials.user, credentials.password});
    if (!reply) return make_error(to_string(endpoint) + ": AUTH: " + connection_error(context.get()));
    if (is_error(reply.get())) {
      return make_error(to_string(endpoint) + ": authentication failed (" + reply_text(reply.get()) + "): check " +
                        std::string(password_setting));
    }
  }
  if (select && credentials.database != 0) {
    const std::string database = std::to_string(credentials.database);
    Reply reply = command(context.get(), {"SELECT", database});
    if (!reply || is_error(reply.get())) {
      return make_error(to_string(endpoint) + ": SELECT " + database + ": " +
                        (reply ? reply_text(reply.get()) : connection_error(context.get())));
    }
  }
  return context;
}

const RedisEndpoint* ClusterTopology::owner_of(std::uint32_t slot) const noexcept {
  for (const auto& range : ranges) {
    if (slot >= range.first && slot <= range.last && range.master < masters.size()) return &masters[range.master];
  }
  return nullptr;
}

Result<ClusterTopology> parse_cluster_slots(const redisReply& reply, const RedisEndpoint& asked) {
  if (reply.type != REDIS_REPLY_ARRAY) return make_error(to_string(asked) + ": CLUSTER SLOTS: unexpected reply");
  ClusterTopology topology;
  for (std::size_t i = 0; i < reply.elements; ++i) {
    const redisReply* range = reply.element[i];
    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 || range->element[0]->type != REDIS_REPLY_INTEGER ||
        range->element[1]->type != REDIS_REPLY_INTEGER) {
      continue;
    }
    const long long first = range->element[0]->integer;
    const long long last = range->element[1]->integer;
    RedisEndpoint master;
    if (first < 0 || last < first || last >= kClusterSlots || !node_of(range->element[2], asked, &master)) continue;
    topology.slots_covered += static_cast<std::uint64_t>(last - first + 1);
    topology.ranges.push_back(SlotRange{static_cast<std::uint32_t>(first), static_cast<std::uint32_t>(last),
                                        index_adding(topology.masters, master)});
    for (std::size_t n = 2; n < range->elements; ++n) {
      RedisEndpoint node;
      if (node_of(range->element[n], asked, &node)) index_adding(topology.nodes, node);
    }
  }
  if (topology.masters.empty()) return make_error(to_string(asked) + ": CLUSTER SLOTS names no master");
  return topology;
}

Result<ClusterTopology> discover_cluster(const std::vector<RedisEndpoint>& candidates, const Credentials& credentials,
                                         std::uint32_t timeout_ms, std::string_view password_setting) {
  std::string first_error;
  std::set<std::string> tried;
  for (const auto& candidate : candidates) {
    if (!tried.insert(to_string(candidate)).second) continue;
    auto context = connect(candidate, credentials, timeout_ms, false, password_setting);
    if (!context) {
      if (first_error.empty()) first_error = context.error().message;
      continue;
    }
    Reply reply = command(context->get(), {"CLUSTER", "SLOTS"});
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
      if (first_error.empty()) {
        first_error = to_string(candidate) + ": CLUSTER SLOTS: " +
                      (reply ? reply_text(reply.get()) : connection_error(context->get()));
      }
      continue;
    }
    auto topology = parse_cluster_slots(*reply, candidate);
    if (topology) return topology;
    if (first_error.empty()) first_error = topology.error().message;
  }
  return make_error(first_error.empty() ? std::string("no Redis Cluster seed answered") : first_error);
}

std::uint32_t key_slot(std::string_view key) noexcept {
  // The hash tag: the text between the first '{' and the next '}', when not empty.
  const auto open = key.find('{');
  if (open != std::string_view::npos) {
    const auto close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  // CRC16-CCITT (XModem), as Redis Cluster computes it; kept in an unsigned
  // int (no promotion to a signed int), cut to 16 bits at each step.
  unsigned crc = 0;
  for (const char c : key) {
    crc ^= static_cast<unsigned>(static_cast<unsigned char>(c)) << 8U;
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000U) != 0 ? ((crc << 1U) ^ 0x1021U) & 0xFFFFU : (crc << 1U) & 0xFFFFU;
    }
  }
  return crc % kClusterSlots;
}

std::uint64_t Backoff::next() noexcept {
  const std::uint64_t delay = next_ms_;
  next_ms_ = std::min(next_ms_ * 2, max_ms_);
  return delay;
}

SlotConnection::SlotConnection(ServerSettings settings, std::string routing_key)
    : settings_(std::move(settings)), routing_key_(std::move(routing_key)) {
  if (!settings_.endpoints.empty()) endpoint_ = settings_.endpoints.front();
}

std::string SlotConnection::where() const {
  if (context_ || settings_.handler != SaveHandler::rediscluster) return to_string(endpoint_);
  std::string seeds;
  for (const auto& seed : settings_.endpoints) seeds += (seeds.empty() ? "" : ", ") + to_string(seed);
  return "Redis Cluster seeds " + seeds;
}

Result<void> SlotConnection::connect_to(const RedisEndpoint& endpoint) {
  auto context = connect(endpoint, settings_.credentials, settings_.timeout_ms, true, settings_.password_setting);
  if (!context) return context.error();
  context_ = std::move(*context);
  endpoint_ = endpoint;
  return {};
}

Result<void> SlotConnection::ensure() {
  if (context_) return {};
  if (settings_.endpoints.empty()) return make_error("no Redis server configured");
  if (settings_.handler != SaveHandler::rediscluster) return connect_to(settings_.endpoints.front());
  std::vector<RedisEndpoint> candidates;
  if (!endpoint_.host.empty() || !endpoint_.socket_path.empty()) candidates.push_back(endpoint_);
  candidates.insert(candidates.end(), known_nodes_.begin(), known_nodes_.end());
  candidates.insert(candidates.end(), settings_.endpoints.begin(), settings_.endpoints.end());
  auto topology = discover_cluster(candidates, settings_.credentials, settings_.timeout_ms, settings_.password_setting);
  if (!topology) return topology.error();
  known_nodes_ = topology->nodes;
  const RedisEndpoint* owner = topology->owner_of(key_slot(routing_key_));
  if (owner == nullptr) return make_error("Redis Cluster: the hash slot of " + routing_key_ + " has no master");
  return connect_to(*owner);
}

Result<void> SlotConnection::follow_moved(std::string_view moved) {
  auto target = moved_target(moved);
  if (!target) return target.error();
  context_.reset();
  return connect_to(*target);
}

Result<Reply> SlotConnection::run(const std::vector<std::string_view>& words) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (auto ready = ensure(); !ready) return ready.error();
    Reply reply = command(context_.get(), words);
    if (!reply) {
      std::string why = to_string(endpoint_) + ": " + std::string(words.empty() ? "" : words.front()) + ": " +
                        connection_error(context_.get());
      context_.reset();
      return make_error(std::move(why));
    }
    const bool moved = is_error(reply.get()) && starts_with(reply_text(reply.get()), "MOVED ");
    if (!moved || attempt > 0) return reply;
    // The slot moved (resharding, failover): go where Redis says.
    if (auto followed = follow_moved(reply_text(reply.get())); !followed) return followed.error();
  }
  return make_error(to_string(endpoint_) + ": redirected twice");
}

Result<Context> SlotConnection::open_another() const {
  return connect(endpoint_, settings_.credentials, settings_.timeout_ms, true, settings_.password_setting);
}

}  // namespace coupecircuit::redis
