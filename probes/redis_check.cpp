// The redis check, with hiredis: connect (bounded by the timeout), AUTH when
// a password is set, PING; up on +PONG. -LOADING (the dataset is still being
// loaded) and -MASTERDOWN (a replica that lost its master) are down: the
// server answers but cannot serve. The connection is not kept between
// checks, so that every check sees what a new client would.
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

#include "checks.hpp"

namespace coupecircuit::probes {
namespace {

struct ContextDeleter {
  void operator()(redisContext* context) const noexcept { redisFree(context); }
};
struct ReplyDeleter {
  void operator()(redisReply* reply) const noexcept { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

timeval to_timeval(std::int64_t us) {
  if (us < 1000) us = 1000;
  return timeval{static_cast<time_t>(us / 1'000'000), static_cast<suseconds_t>(us % 1'000'000)};
}

// The first word of an error reply ("LOADING", "NOAUTH", "WRONGPASS"), letters only: the
// rest is the server's text.
std::string error_word(const redisReply& reply) {
  std::string word;
  for (std::size_t i = 0; i < reply.len && i < 24; ++i) {
    const char c = reply.str[i];
    if (!(c >= 'A' && c <= 'Z')) break;
    word += c;
  }
  return word.empty() ? "ERR" : word;
}

class RedisCheck final : public Check {
 public:
  explicit RedisCheck(ProbeSpec spec) : spec_(std::move(spec)) {}

  CheckOutcome run(const std::atomic<bool>& /*stop: each step is bounded by the timeout*/) override {
    CheckOutcome outcome;
    started_ = monotonic_us();
    const std::int64_t deadline = started_ + std::int64_t{spec_.timeout_ms} * 1000;
    const RedisEndpoint& endpoint = spec_.redis.target.endpoints.front();
    const timeval connect_timeout = to_timeval(deadline - monotonic_us());
    std::unique_ptr<redisContext, ContextDeleter> context(
        endpoint.socket_path.empty() ? redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, connect_timeout)
                                     : redisConnectUnixWithTimeout(endpoint.socket_path.c_str(), connect_timeout));
    if (!context || context->err != 0) {
      outcome.latency_us = elapsed();
      outcome.error = !context ? "out of memory" : connect_error(*context);
      return outcome;
    }
    const std::string password = spec_.secret.empty() ? spec_.redis.target.password : spec_.secret;
    if (!password.empty()) {
      std::vector<const char*> argv{"AUTH"};
      std::vector<std::size_t> lengths{4};
      if (!spec_.redis.target.user.empty()) {
        argv.push_back(spec_.redis.target.user.c_str());
        lengths.push_back(spec_.redis.target.user.size());
      }
      argv.push_back(password.c_str());
      lengths.push_back(password.size());
      Reply reply = command(*context, deadline, argv, lengths);
      if (!reply || reply->type == REDIS_REPLY_ERROR) return finish(outcome, reply, *context, "AUTH");
    }
    Reply reply = command(*context, deadline, {"PING"}, {4});
    if (reply && reply->type == REDIS_REPLY_STATUS && std::string_view(reply->str, reply->len) == "PONG") {
      outcome.up = true;
      outcome.latency_us = elapsed();
      return outcome;
    }
    return finish(outcome, reply, *context, "PING");
  }

 private:
  [[nodiscard]] std::uint32_t elapsed() const { return static_cast<std::uint32_t>(std::min<std::int64_t>(monotonic_us() - started_, UINT32_MAX)); }

  static Reply command(redisContext& context, std::int64_t deadline, std::vector<const char*> argv,
                std::vector<std::size_t> lengths) {
    const std::int64_t left = deadline - monotonic_us();
    if (left <= 0) return nullptr;
    redisSetTimeout(&context, to_timeval(left));
    return Reply(static_cast<redisReply*>(
        redisCommandArgv(&context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
  }

  [[nodiscard]] std::string connect_error(const redisContext& context) const {
    if (context.err == REDIS_ERR_IO && (errno == EAGAIN || errno == ETIMEDOUT || errno == EINPROGRESS)) {
      return "timeout after " + std::to_string(spec_.timeout_ms) + " ms";
    }
    return std::string("cannot connect: ") + context.errstr;  // hiredis' text: errno or "Connection refused"
  }

  CheckOutcome& finish(CheckOutcome& outcome, const Reply& reply, const redisContext& context, std::string_view what) {
    outcome.latency_us = elapsed();
    if (!reply) {
      outcome.error = context.err == REDIS_ERR_IO && (errno == EAGAIN || errno == ETIMEDOUT || errno == 0)
                          ? "timeout after " + std::to_string(spec_.timeout_ms) + " ms"
                          : std::string(what) + ": connection lost";
      return outcome;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
      const std::string word = error_word(*reply);
      if (word == "LOADING") {
        outcome.error = "LOADING: the dataset is being loaded";
      } else if (word == "MASTERDOWN") {
        outcome.error = "MASTERDOWN: the replica lost its master";
      } else {
        outcome.error = std::string(what) + " refused: " + word;
      }
      return outcome;
    }
    outcome.error = std::string(what) + ": unexpected reply";
    return outcome;
  }

  ProbeSpec spec_;
  std::int64_t started_ = monotonic_us();
};

}  // namespace

std::unique_ptr<Check> make_redis_check(const ProbeSpec& spec) { return std::make_unique<RedisCheck>(spec); }

}  // namespace coupecircuit::probes
