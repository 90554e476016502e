#include "redis_store.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <span>
#include <string_view>
#include <vector>

#include "log.hpp"
#include "redis_connection.hpp"
#include "snapshot.hpp"

namespace coupecircuit {
namespace {

constexpr std::size_t kScanCount = 1000;
// A known key's derived write time may drift this much between passes
// (round trips, PTTL's rounding) without meaning a new write.
constexpr std::int64_t kActivityToleranceMs = 500;
constexpr std::int64_t kForever = INT64_MAX / 2;  // no expiry, not empty: always active
constexpr std::int64_t kNever = INT64_MIN / 2;    // no expiry, empty: never active
constexpr std::string_view kLockSuffix = "_LOCK";
constexpr std::uint64_t kMinBackoffMs = 250;

using redis::append;
using redis::command;
using redis::connection_error;
using redis::Context;
using redis::is_redirect;
using redis::is_wrong_type;
using redis::next_reply;
using redis::Reply;
using redis::reply_text;

std::uint64_t key_hash(std::string_view key) noexcept {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  for (const char c : key) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

std::int64_t wall_ms() noexcept { return snapshot::realtime_now_ns() / 1'000'000; }
std::uint64_t mono_ms() noexcept { return snapshot::monotonic_now_ns() / 1'000'000; }

std::int64_t floor_second(std::int64_t ms) noexcept {
  if (ms == kForever || ms == kNever) return ms;
  return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

bool ends_with(std::string_view text, std::string_view suffix) noexcept {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

// Glob-escapes a prefix for SCAN MATCH and PSUBSCRIBE.
std::string glob_escape(std::string_view text) {
  std::string out;
  for (const char c : text) {
    if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

enum class NotifyMode : std::uint8_t { off, keyspace, keyevent };

// notify-keyspace-events holds enough for session writes and deletions:
// K or E, with generic (g) and string ($) events, or A.
NotifyMode notify_mode_of(std::string_view flags) {
  const bool all = flags.find('A') != std::string_view::npos;
  const bool events = all || (flags.find('g') != std::string_view::npos && flags.find('$') != std::string_view::npos);
  if (!events) return NotifyMode::off;
  if (flags.find('K') != std::string_view::npos) return NotifyMode::keyspace;
  if (flags.find('E') != std::string_view::npos) return NotifyMode::keyevent;
  return NotifyMode::off;
}

constexpr std::array<std::string_view, 8> kKeyEvents = {"set",     "del",        "expire",    "expired",
                                                        "evicted", "rename_to", "rename_from", "setrange"};

bool is_removal(std::string_view event) noexcept {
  return event == "del" || event == "expired" || event == "evicted" || event == "rename_from";
}

// Reads further chunks of one value with GETRANGE, when the classifier
// needs bytes past the first window (it skips long strings unread).
class RangeReader final : public SessionReader {
 public:
  RangeReader(redisContext* context, std::string_view key, std::uint64_t* bytes) noexcept
      : context_(context), key_(key), bytes_(bytes) {}
  std::size_t read_at(std::uint64_t offset, char* into, std::size_t size) noexcept override {
    if (size == 0) return 0;
    try {
      const std::string first = std::to_string(offset);
      const std::string last = std::to_string(offset + size - 1);
      Reply reply = command(context_, {"GETRANGE", key_, first, last});
      if (!reply || reply->type != REDIS_REPLY_STRING) return 0;
      const std::size_t got = std::min(size, reply->len);
      std::memcpy(into, reply->str, got);
      *bytes_ += got;
      return got;
    } catch (...) {
      return 0;
    }
  }

 private:
  redisContext* context_;
  std::string_view key_;
  std::uint64_t* bytes_;
};

}  // namespace

// ---------------------------------------------------------------- worker

class RedisSessionStore::Worker {
 public:
  Worker(const RedisStoreOptions& options, int change_fd)
      : options_(options), change_fd_(change_fd), wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
    const std::int64_t now_s = wall_ms() / 1000;
    status_.unavailable_since_wall_s = now_s;
    if (options_.save_path.handler == SaveHandler::redis) {
      for (std::size_t i = 0; i < options_.save_path.targets.size(); ++i) {
        for (const auto& endpoint : options_.save_path.targets[i].endpoints) {
          masters_.push_back(Master{endpoint, i, {}, {}, NotifyMode::off, false, false, false});
        }
      }
    }
  }

  void run() {
    std::uint64_t next_pass = 0;
    redis::Backoff backoff(kMinBackoffMs, static_cast<std::uint64_t>(options_.rescan_interval_s) * 1000);
    while (!stop_.load()) {
      if (!counting_.load()) {
        idle();
        next_pass = 0;
        continue;
      }
      std::uint64_t now = mono_ms();
      if (pass_requested_.exchange(false) || now >= next_pass) {
        const bool ok = full_pass();
        now = mono_ms();
        if (ok) backoff.reset();
        next_pass = now + (ok ? static_cast<std::uint64_t>(options_.rescan_interval_s) * 1000 : backoff.next());
      }
      const int timeout = next_pass > now ? static_cast<int>(std::min<std::uint64_t>(next_pass - now, 60'000)) : 0;
      wait_and_follow(timeout);
    }
  }

  // Waits up to timeout_ms for a wake-up or notifications, and follows them.
  void wait_and_follow(int timeout_ms) {
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    std::vector<std::size_t> owners;
    for (std::size_t i = 0; i < masters_.size(); ++i) {
      if (!masters_[i].subscriber) continue;
      fds.push_back({masters_[i].subscriber->fd, POLLIN, 0});
      owners.push_back(i);
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) <= 0) return;
    if ((fds[0].revents & POLLIN) != 0) {
      std::uint64_t value = 0;
      [[maybe_unused]] const auto got = ::read(wake_fd_.get(), &value, sizeof value);
    }
    bool changed = false;
    for (std::size_t f = 1; f < fds.size(); ++f) {
      if ((fds[f].revents & (POLLIN | POLLHUP | POLLERR)) != 0) changed |= drain_notifications(owners[f - 1]);
    }
    if (!pending_.empty()) changed |= reread_pending();
    if (changed) signal_change();
  }

  void stop() {
    stop_.store(true);
    wake();
  }
  void request_pass() {
    pass_requested_.store(true);
    wake();
  }
  void set_counting(bool counting) {
    if (counting_.exchange(counting) != counting) wake();
  }

  bool full_pass();

  RedisStoreStatus status(std::int64_t now_wall_s) const {
    const std::lock_guard lock(mutex_);
    RedisStoreStatus result = status_;
    const std::int64_t cutoff = now_wall_s - static_cast<std::int64_t>(options_.active_minutes) * 60;
    for (auto it = by_second_.lower_bound(cutoff); it != by_second_.end(); ++it) {
      for (std::size_t i = 0; i < kSessionClassCount; ++i) result.counts.active[i] += it->second[i];
    }
    for (std::size_t i = 0; i < kSessionClassCount; ++i) {
      result.counts.inactive[i] = totals_[i] - result.counts.active[i];
      result.counts.files_seen += totals_[i];
    }
    return result;
  }

  std::string last_error() const {
    const std::lock_guard lock(mutex_);
    return last_error_;
  }

 private:
  using SlotCounts = std::array<std::uint64_t, kSessionClassCount>;
  struct Entry {
    std::int64_t activity_ms = 0;
    std::uint32_t length = 0;  // capped at max_read_bytes
    std::uint16_t epoch = 0;
    std::uint8_t slot = 0;
  };
  static_assert(sizeof(Entry) == 16);

  struct Master {
    RedisEndpoint endpoint;
    std::size_t target = 0;
    Context command;
    Context subscriber;
    NotifyMode mode = NotifyMode::off;
    bool mode_known = false;
    bool reached = false;
    bool notice_logged = false;
  };

  const RedisTarget& target_of(const Master& master) const { return options_.save_path.targets[master.target]; }

  // Not counting (another node holds the session lease): no subscription,
  // no traffic, until woken.
  void idle() {
    for (auto& master : masters_) master.subscriber.reset();
    pending_.clear();
    pollfd fd{wake_fd_.get(), POLLIN, 0};
    if (::poll(&fd, 1, 60'000) > 0) {
      std::uint64_t value = 0;
      [[maybe_unused]] const auto got = ::read(wake_fd_.get(), &value, sizeof value);
    }
  }
  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wake_fd_.get(), &one, sizeof one);
  }
  void signal_change() {
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(change_fd_, &one, sizeof one);
  }

  // Connects, authenticates and selects the database (when `select`).
  Context connect(const RedisEndpoint& endpoint, const RedisTarget& target, bool select, std::string* error) const {
    auto context = redis::connect(endpoint, redis::credentials_of(target, options_.auth_file_password), options_.timeout_ms,
                                  select, "auth_file or auth= of save_path");
    if (context) return std::move(*context);
    *error = context.error().message;
    return nullptr;
  }

  bool discover_cluster(std::string* error);
  void adopt_masters(const std::vector<RedisEndpoint>& masters);
  std::uint32_t scan_masters(std::string* error);
  struct BatchItem {
    std::string_view name;
    std::uint64_t hash;
    bool known;
    Entry entry;
  };
  struct ItemReplies {
    const redisReply* ttl;
    const redisReply* length;
    const redisReply* value;  // new keys only
  };
  struct FreshValue {
    std::size_t item;
    const redisReply* value;
    std::int64_t activity_ms;
    std::uint64_t size;
  };
  struct BatchOutcome {
    std::vector<std::string_view> reread_names;
    std::vector<std::int64_t> reread_activity;
    std::vector<FreshValue> fresh;
  };
  std::vector<BatchItem> batch_items(const redisReply& keys);
  bool read_replies(Master& master, std::size_t count, std::vector<Reply>* replies, std::string* error);
  void judge_known(const BatchItem& item, long long pttl, const redisReply* length_reply, std::int64_t now_ms,
                   BatchOutcome& outcome);
  bool judge_item(const Master& master, std::size_t index, const BatchItem& item, const ItemReplies& replies,
                  std::int64_t now_ms, BatchOutcome& outcome, std::string* error);
  Entry entry_of(redisContext* context, std::string_view key, std::string_view first, std::int64_t activity_ms,
                 std::uint64_t size, bool counted = true);
  void store_batch(const std::vector<std::uint64_t>& gone, const std::vector<std::pair<std::uint64_t, Entry>>& classified) {
    const std::lock_guard lock(mutex_);
    for (const auto hash : gone) forget(hash);
    for (const auto& [hash, entry] : classified) store(hash, entry);
  }
  std::string record_success(std::int64_t now_wall_ns, std::uint64_t started_ns);
  std::string record_failure(std::int64_t now_wall_ns, const std::string& error);
  bool scan_master(Master& master, std::string* error);
  bool process_keys(Master& master, const redisReply& keys, std::string* error);
  bool read_values(Master& master, const std::vector<std::string_view>& names, std::vector<std::int64_t>& activity,
                   std::string* error);
  void check_notifications(Master& master);
  void subscribe(Master& master);
  bool drain_notifications(std::size_t index);
  bool handle_message(std::size_t index, const redisReply& message);
  bool reread_pending();
  bool reread_keys(Master& master, const std::set<std::string>& names);
  // Classifies a value of `size` bytes whose first bytes are `first`,
  // reading on with GETRANGE through `context` when needed.
  std::uint8_t classify(redisContext* context, std::string_view key, std::string_view first, std::uint64_t size);
  std::string window_last_byte() const {
    return std::to_string(std::min(options_.read_chunk_bytes, options_.max_read_bytes) - 1);
  }

  std::int64_t activity_of(long long pttl, std::int64_t now_ms, bool empty) const {
    if (pttl < 0) return empty ? kNever : kForever;
    const std::int64_t lifetime_ms = static_cast<std::int64_t>(options_.gc_maxlifetime_s) * 1000;
    const std::int64_t since_write = lifetime_ms - static_cast<std::int64_t>(pttl);
    return since_write < 0 ? now_ms : now_ms - since_write;
  }

  // Table updates: under mutex_ (status() reads from the daemon's thread).
  void account(const Entry& entry, int direction) {
    const std::int64_t second = floor_second(entry.activity_ms);
    if (direction > 0) {
      ++totals_[entry.slot];
      ++by_second_[second][entry.slot];
      return;
    }
    --totals_[entry.slot];
    auto bucket = by_second_.find(second);
    if (bucket == by_second_.end()) return;
    --bucket->second[entry.slot];
    bool all_zero = true;
    for (const auto count : bucket->second) all_zero = all_zero && count == 0;
    if (all_zero) by_second_.erase(bucket);
  }
  void store(std::uint64_t hash, const Entry& entry) {
    auto [it, inserted] = keys_.try_emplace(hash, entry);
    if (!inserted) {
      account(it->second, -1);
      it->second = entry;
    }
    account(entry, +1);
  }
  void forget(std::uint64_t hash) {
    auto it = keys_.find(hash);
    if (it == keys_.end()) return;
    account(it->second, -1);
    keys_.erase(it);
  }

  RedisStoreOptions options_;
  int change_fd_;
  UniqueFd wake_fd_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> pass_requested_{false};
  std::atomic<bool> counting_{true};

  std::vector<Master> masters_;
  std::vector<RedisEndpoint> cluster_nodes_;  // every node CLUSTER SLOTS named, for the next discovery

  mutable std::mutex mutex_;
  absl::flat_hash_map<std::uint64_t, Entry> keys_;
  std::map<std::int64_t, SlotCounts> by_second_;
  SlotCounts totals_{};
  RedisStoreStatus status_;
  std::string last_error_;

  std::uint16_t epoch_ = 0;
  std::uint64_t pass_bytes_ = 0;
  std::uint64_t pass_values_ = 0;
  std::vector<char> scratch_;
  // Keys named by notifications, to read again: per master index.
  std::map<std::size_t, std::set<std::string>> pending_;
};

bool RedisSessionStore::Worker::discover_cluster(std::string* error) {
  const RedisTarget& target = options_.save_path.targets.front();
  std::vector<RedisEndpoint> candidates;
  for (const auto& master : masters_) candidates.push_back(master.endpoint);
  candidates.insert(candidates.end(), cluster_nodes_.begin(), cluster_nodes_.end());
  candidates.insert(candidates.end(), target.endpoints.begin(), target.endpoints.end());
  auto topology = redis::discover_cluster(candidates, redis::credentials_of(target, options_.auth_file_password),
                                          options_.timeout_ms, "auth_file or auth= of save_path");
  if (!topology) {
    *error = topology.error().message;
    return false;
  }
  cluster_nodes_ = topology->nodes;
  adopt_masters(topology->masters);
  if (topology->slots_covered < redis::kClusterSlots) {
    *error = "Redis Cluster: " + std::to_string(redis::kClusterSlots - topology->slots_covered) +
             " hash slots have no master";
    return false;
  }
  return true;
}

// The masters CLUSTER SLOTS named, keeping the connections of those that
// stay masters.
void RedisSessionStore::Worker::adopt_masters(const std::vector<RedisEndpoint>& masters) {
  std::vector<Master> next;
  for (const auto& endpoint : masters) {
    auto same = std::find_if(masters_.begin(), masters_.end(), [&](const Master& m) { return m.endpoint == endpoint; });
    if (same != masters_.end()) {
      next.push_back(std::move(*same));
    } else {
      next.push_back(Master{endpoint, 0, {}, {}, NotifyMode::off, false, false, false});
    }
  }
  const auto same_endpoint = [](const Master& a, const Master& b) { return a.endpoint == b.endpoint; };
  if (!std::equal(next.begin(), next.end(), masters_.begin(), masters_.end(), same_endpoint)) {
    std::string names;
    for (const auto& m : next) names += (names.empty() ? "" : " ") + to_string(m.endpoint);
    log::info(log::id::kRedisTopology, "Redis Cluster masters: " + names);
  }
  masters_ = std::move(next);
  pending_.clear();
}

// Connects (when needed) and scans every master; the number reached.
std::uint32_t RedisSessionStore::Worker::scan_masters(std::string* error) {
  std::uint32_t reached = 0;
  for (auto& master : masters_) {
    master.reached = false;
    std::string why;
    if (!master.command) master.command = connect(master.endpoint, target_of(master), true, &why);
    if (master.command && !master.mode_known) check_notifications(master);
    if (master.command && scan_master(master, &why)) {
      master.reached = true;
      ++reached;
      continue;
    }
    master.command.reset();
    master.subscriber.reset();
    master.mode_known = false;
    if (error->empty()) *error = why;
  }
  return reached;
}

// A complete pass: keys not seen are gone; the store is available again.
// Under mutex_. Returns the notice to log ("" when none).
std::string RedisSessionStore::Worker::record_success(std::int64_t now_wall_ns, std::uint64_t started_ns) {
  erase_unseen(keys_, epoch_, [this](const auto& entry) { account(entry, -1); });
  std::string came_back = !status_.available && status_.passes > 0 ? "sessions in Redis counted again" : "";
  status_.available = true;
  status_.unavailable_since_wall_s = 0;
  status_.last_good_pass_wall_ns = now_wall_ns;
  status_.last_pass_duration_us = (snapshot::monotonic_now_ns() - started_ns) / 1000;
  status_.keys_read_last_pass = pass_values_;
  status_.bytes_read_last_pass = pass_bytes_;
  ++status_.passes;
  last_error_.clear();
  return came_back;
}

// A failed pass: the store is unavailable since now (unless already).
// Under mutex_. Returns the error to log ("" when already logged).
std::string RedisSessionStore::Worker::record_failure(std::int64_t now_wall_ns, const std::string& error) {
  std::string went_down = status_.available || last_error_.empty() ? error : "";
  if (status_.available) status_.unavailable_since_wall_s = now_wall_ns / 1'000'000'000;
  status_.available = false;
  if (last_error_.empty()) last_error_ = error;
  return went_down;
}

bool RedisSessionStore::Worker::full_pass() {
  const std::uint64_t started = snapshot::monotonic_now_ns();
  ++epoch_;
  pass_bytes_ = 0;
  pass_values_ = 0;
  std::string error;
  const bool discovered = options_.save_path.handler != SaveHandler::rediscluster || discover_cluster(&error);
  const std::uint32_t reached = scan_masters(&error);
  const bool ok = discovered && !masters_.empty() && reached == masters_.size();
  bool notifications = !masters_.empty();
  for (auto& master : masters_) {
    if (ok && master.mode != NotifyMode::off && !master.subscriber) subscribe(master);
    notifications = notifications && master.subscriber != nullptr;
  }

  const std::int64_t now_wall_ns = snapshot::realtime_now_ns();
  std::string went_down, came_back;
  {
    const std::lock_guard lock(mutex_);
    if (ok) {
      came_back = record_success(now_wall_ns, started);
    } else {
      went_down = record_failure(now_wall_ns, error);
    }
    status_.masters_reached = reached;
    status_.masters_total = static_cast<std::uint32_t>(masters_.size());
    status_.notifications = notifications;
  }
  if (!went_down.empty()) {
    log::error(log::id::kRedisUnavailable, "sessions in Redis unavailable: " + went_down +
                                               " (SESSIONS_ACTIVES is not exported until a full pass succeeds)");
  }
  if (!came_back.empty()) log::notice(log::id::kRedisAvailable, came_back);
  log::debug(log::id::kScanSummary, "Redis pass: " + std::to_string(keys_.size()) + " keys, " +
                                        std::to_string(pass_values_) + " values read, " + std::to_string(pass_bytes_) +
                                        " bytes, " + std::to_string(reached) + "/" + std::to_string(masters_.size()) +
                                        " masters" + (ok ? "" : ", failed: " + error));
  signal_change();
  return ok;
}

bool RedisSessionStore::Worker::scan_master(Master& master, std::string* error) {
  const std::string pattern = glob_escape(target_of(master).prefix) + "*";
  const std::string count = std::to_string(kScanCount);
  std::string cursor = "0";
  do {
    if (stop_.load()) {
      *error = "stopping";
      return false;
    }
    Reply reply = command(master.command.get(), {"SCAN", cursor, "MATCH", pattern, "COUNT", count});
    if (!reply) {
      *error = to_string(master.endpoint) + ": SCAN: " + connection_error(master.command.get());
      return false;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 || reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
      *error = to_string(master.endpoint) + ": SCAN: " +
               (reply->type == REDIS_REPLY_ERROR ? reply_text(reply.get()) : std::string("unexpected reply"));
      return false;
    }
    cursor = reply_text(reply->element[0]);
    for (std::size_t i = 0; i < reply->element[1]->elements; ++i) pass_bytes_ += reply->element[1]->element[i]->len;
    if (!process_keys(master, *reply->element[1], error)) return false;
  } while (cursor != "0");
  return true;
}

// The keys of a SCAN batch still to look at this pass (not locks, not
// seen twice), with what is known of them. Takes mutex_.
std::vector<RedisSessionStore::Worker::BatchItem> RedisSessionStore::Worker::batch_items(const redisReply& keys) {
  std::vector<BatchItem> items;
  items.reserve(keys.elements);
  const std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < keys.elements; ++i) {
    const redisReply* key = keys.element[i];
    if (key->type != REDIS_REPLY_STRING) continue;
    const std::string_view name(key->str, key->len);
    if (ends_with(name, kLockSuffix)) continue;
    const std::uint64_t hash = key_hash(name);
    auto it = keys_.find(hash);
    if (it != keys_.end() && it->second.epoch == epoch_) continue;  // a key SCAN returned twice
    items.push_back(BatchItem{name, hash, it != keys_.end(), it != keys_.end() ? it->second : Entry{}});
  }
  return items;
}

// Reads `count` pipelined replies from the master's command connection.
bool RedisSessionStore::Worker::read_replies(Master& master, std::size_t count, std::vector<Reply>* replies,
                                             std::string* error) {
  redisContext* context = master.command.get();
  replies->reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    Reply reply = next_reply(context);
    if (!reply) {
      *error = to_string(master.endpoint) + ": " + connection_error(context);
      return false;
    }
    replies->push_back(std::move(reply));
  }
  return true;
}

// A known key: seen this pass; read again when its length or derived write
// time moved. Under mutex_.
void RedisSessionStore::Worker::judge_known(const BatchItem& item, long long pttl, const redisReply* length_reply,
                                            std::int64_t now_ms, BatchOutcome& outcome) {
  if (length_reply->type != REDIS_REPLY_INTEGER) return;
  const auto length = static_cast<std::uint32_t>(std::min<long long>(length_reply->integer, UINT32_MAX));
  const std::int64_t activity = activity_of(pttl, now_ms, length == 0);
  const std::int64_t drift =
      activity > item.entry.activity_ms ? activity - item.entry.activity_ms : item.entry.activity_ms - activity;
  keys_[item.hash].epoch = epoch_;  // seen, even if the re-read fails
  if (length != item.entry.length || drift > kActivityToleranceMs) {
    outcome.reread_names.push_back(item.name);
    outcome.reread_activity.push_back(activity);
  }
}

// One key's replies (PTTL, STRLEN and, for a new key, GETRANGE). False: a
// server error that fails the pass. Under mutex_.
bool RedisSessionStore::Worker::judge_item(const Master& master, std::size_t index, const BatchItem& item,
                                           const ItemReplies& replies, std::int64_t now_ms, BatchOutcome& outcome,
                                           std::string* error) {
  for (const redisReply* reply : {replies.ttl, replies.length}) {
    if (reply->type == REDIS_REPLY_ERROR && !is_redirect(reply) && !is_wrong_type(reply)) {
      *error = to_string(master.endpoint) + ": " + reply_text(reply);
      return false;
    }
  }
  if (is_redirect(replies.ttl) || is_redirect(replies.length)) {
    // Being moved to another master (resharding): counted as it was.
    if (item.known) keys_[item.hash].epoch = epoch_;
    return true;
  }
  if (replies.ttl->type != REDIS_REPLY_INTEGER || replies.ttl->integer == -2 || is_wrong_type(replies.length)) {
    forget(item.hash);  // gone since SCAN, or not a string
    return true;
  }
  if (item.known) {
    judge_known(item, replies.ttl->integer, replies.length, now_ms, outcome);
    return true;
  }
  if (replies.length->type != REDIS_REPLY_INTEGER || replies.value->type != REDIS_REPLY_STRING) return true;
  const auto size = static_cast<std::uint64_t>(replies.length->integer);
  outcome.fresh.push_back(FreshValue{index, replies.value, activity_of(replies.ttl->integer, now_ms, size == 0), size});
  return true;
}

// The table entry of a value whose first bytes are `first` (classified,
// reading on with GETRANGE when needed).
RedisSessionStore::Worker::Entry RedisSessionStore::Worker::entry_of(redisContext* context, std::string_view key,
                                                                     std::string_view first, std::int64_t activity_ms,
                                                                     std::uint64_t size, bool counted) {
  if (counted) {  // a full pass's figures; not the reads that follow notifications
    pass_bytes_ += first.size();
    ++pass_values_;
  }
  Entry entry;
  entry.activity_ms = activity_ms;
  entry.length = static_cast<std::uint32_t>(std::min<std::uint64_t>(size, UINT32_MAX));
  entry.epoch = epoch_;
  entry.slot = classify(context, key, first, size);
  return entry;
}

// One SCAN batch: PTTL + GETRANGE for new keys, PTTL + STRLEN for known
// ones, then GETRANGE for the known keys whose write time or length moved.
bool RedisSessionStore::Worker::process_keys(Master& master, const redisReply& keys, std::string* error) {
  const std::vector<BatchItem> items = batch_items(keys);
  if (items.empty()) return true;
  const std::string last_byte = window_last_byte();
  redisContext* context = master.command.get();
  std::size_t expected = 0;
  for (const auto& item : items) {
    append(context, {"PTTL", item.name});
    append(context, {"STRLEN", item.name});
    if (!item.known) append(context, {"GETRANGE", item.name, "0", last_byte});
    expected += item.known ? 2U : 3U;
  }
  std::vector<Reply> replies;
  if (!read_replies(master, expected, &replies, error)) return false;
  const std::int64_t now_ms = wall_ms();
  BatchOutcome outcome;
  {
    const std::lock_guard lock(mutex_);
    std::size_t next = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const ItemReplies item_replies{replies[next].get(), replies[next + 1].get(),
                                     items[i].known ? nullptr : replies[next + 2].get()};
      next += items[i].known ? 2U : 3U;
      if (!judge_item(master, i, items[i], item_replies, now_ms, outcome, error)) return false;
    }
  }
  // New keys: classified without the lock (a long value may need more
  // GETRANGEs), then stored.
  std::vector<std::pair<std::uint64_t, Entry>> classified;
  classified.reserve(outcome.fresh.size());
  for (const auto& f : outcome.fresh) {
    const BatchItem& item = items[f.item];
    classified.emplace_back(item.hash, entry_of(context, item.name, std::string_view(f.value->str, f.value->len),
                                                f.activity_ms, f.size));
  }
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [hash, entry] : classified) store(hash, entry);
  }
  if (outcome.reread_names.empty()) return true;
  // The names point into the SCAN reply, alive until the caller's next SCAN.
  return read_values(master, outcome.reread_names, outcome.reread_activity, error);
}

// GETRANGE of known keys whose content may have changed; activity[i] is the
// write time derived from the PTTL just read.
bool RedisSessionStore::Worker::read_values(Master& master, const std::vector<std::string_view>& names,
                                            std::vector<std::int64_t>& activity, std::string* error) {
  const std::string last_byte = window_last_byte();
  redisContext* context = master.command.get();
  for (const auto name : names) {
    append(context, {"STRLEN", name});
    append(context, {"GETRANGE", name, "0", last_byte});
  }
  std::vector<Reply> replies;
  if (!read_replies(master, names.size() * 2, &replies, error)) return false;
  std::vector<std::pair<std::uint64_t, Entry>> classified;
  std::vector<std::uint64_t> gone;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const redisReply* length = replies[2 * i].get();
    const redisReply* reply = replies[2 * i + 1].get();
    const std::uint64_t hash = key_hash(names[i]);
    if (is_wrong_type(reply) || is_wrong_type(length)) gone.push_back(hash);
    if (reply->type != REDIS_REPLY_STRING || length->type != REDIS_REPLY_INTEGER) continue;
    const auto size = static_cast<std::uint64_t>(length->integer);
    const bool no_expiry = activity[i] == kForever || activity[i] == kNever;
    const std::int64_t activity_ms = no_expiry ? (size == 0 ? kNever : kForever) : activity[i];
    classified.emplace_back(hash, entry_of(context, names[i], std::string_view(reply->str, reply->len), activity_ms, size));
  }
  store_batch(gone, classified);
  return true;
}

std::uint8_t RedisSessionStore::Worker::classify(redisContext* context, std::string_view key, std::string_view first,
                                                 std::uint64_t size) {
  const std::size_t window_size = std::min(options_.read_chunk_bytes, options_.max_read_bytes);
  if (first.size() >= size || first.size() < window_size) {
    // The whole value is here (or it shrank meanwhile).
    return static_cast<std::uint8_t>(
        classify_session(first, size > options_.max_read_bytes && first.size() >= options_.max_read_bytes, options_.rule));
  }
  scratch_.resize(window_size);
  std::memcpy(scratch_.data(), first.data(), first.size());
  RangeReader reader(context, key, &pass_bytes_);
  SessionStream stream;
  stream.window = std::span<char>(scratch_.data(), scratch_.size());
  stream.filled = first.size();
  stream.size = size;
  stream.limit = options_.max_read_bytes;
  stream.reader = &reader;
  return static_cast<std::uint8_t>(classify_session(stream, options_.rule));
}

void RedisSessionStore::Worker::check_notifications(Master& master) {
  master.mode_known = true;
  Reply reply = command(master.command.get(), {"CONFIG", "GET", "notify-keyspace-events"});
  std::string why;
  if (!reply) {
    why = "CONFIG GET failed";
    master.mode = NotifyMode::off;
  } else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_STRING) {
    const std::string flags = reply_text(reply->element[1]);
    master.mode = notify_mode_of(flags);
    if (master.mode == NotifyMode::off) why = "notify-keyspace-events is \"" + flags + "\"";
  } else {
    why = "CONFIG GET refused" + (reply->type == REDIS_REPLY_ERROR ? " (" + reply_text(reply.get()) + ")" : std::string());
    master.mode = NotifyMode::off;
  }
  if (master.mode == NotifyMode::off && !master.notice_logged) {
    master.notice_logged = true;
    log::notice(log::id::kRedisNotifications,
                to_string(master.endpoint) + ": keyspace notifications off (" + why +
                    "; they need K or E with g and $, or A): counts follow the full pass every " +
                    std::to_string(options_.rescan_interval_s) + " s");
  }
}

void RedisSessionStore::Worker::subscribe(Master& master) {
  std::string why;
  const RedisTarget& target = target_of(master);
  Context context = connect(master.endpoint, target, false, &why);
  if (!context) return;
  const std::string database = std::to_string(target.database);
  std::size_t confirmations = 0;
  if (master.mode == NotifyMode::keyspace) {
    const std::string pattern = "__keyspace@" + database + "__:" + glob_escape(target.prefix) + "*";
    append(context.get(), {"PSUBSCRIBE", pattern});
    confirmations = 1;
  } else {
    std::vector<std::string> channels;
    for (const auto event : kKeyEvents) channels.push_back("__keyevent@" + database + "__:" + std::string(event));
    std::vector<std::string_view> words{"SUBSCRIBE"};
    for (const auto& channel : channels) words.push_back(channel);
    std::vector<const char*> argv;
    std::vector<std::size_t> lengths;
    for (const auto word : words) {
      argv.push_back(word.data());
      lengths.push_back(word.size());
    }
    redisAppendCommandArgv(context.get(), static_cast<int>(argv.size()), argv.data(), lengths.data());
    confirmations = channels.size();
  }
  for (std::size_t i = 0; i < confirmations; ++i) {
    Reply reply = next_reply(context.get());
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
      log::warning(log::id::kRedisNotifications, to_string(master.endpoint) + ": cannot subscribe to keyspace "
                                                     "notifications: " + (reply ? reply_text(reply.get()) : connection_error(context.get())));
      return;
    }
  }
  master.subscriber = std::move(context);
  log::info(log::id::kRedisNotifications, to_string(master.endpoint) + ": following keyspace notifications");
}

bool RedisSessionStore::Worker::drain_notifications(std::size_t index) {
  Master& master = masters_[index];
  if (!master.subscriber) return false;
  if (redisBufferRead(master.subscriber.get()) != REDIS_OK) {
    // Connection lost: the next full pass finds out what happened.
    master.subscriber.reset();
    master.mode_known = false;
    pass_requested_.store(true);
    return false;
  }
  bool changed = false;
  for (;;) {
    void* raw = nullptr;
    if (redisGetReplyFromReader(master.subscriber.get(), &raw) != REDIS_OK) {
      master.subscriber.reset();
      pass_requested_.store(true);
      return changed;
    }
    if (raw == nullptr) break;
    Reply reply(static_cast<redisReply*>(raw));
    changed |= handle_message(index, *reply);
  }
  return changed;
}

bool RedisSessionStore::Worker::handle_message(std::size_t index, const redisReply& message) {
  if (message.type != REDIS_REPLY_ARRAY || message.elements < 3) return false;
  const std::string_view kind(message.element[0]->str, message.element[0]->len);
  const redisReply* channel_reply = message.element[message.elements - 2];
  const redisReply* payload_reply = message.element[message.elements - 1];
  if ((kind != "message" && kind != "pmessage") || channel_reply->type != REDIS_REPLY_STRING ||
      payload_reply->type != REDIS_REPLY_STRING) {
    return false;
  }
  const std::string_view channel(channel_reply->str, channel_reply->len);
  const std::string_view payload(payload_reply->str, payload_reply->len);
  const auto colon = channel.find("__:");
  if (colon == std::string_view::npos) return false;
  std::string_view key, event;
  if (masters_[index].mode == NotifyMode::keyspace) {
    key = channel.substr(colon + 3);
    event = payload;
  } else {
    event = channel.substr(colon + 3);
    key = payload;
  }
  const std::string& prefix = target_of(masters_[index]).prefix;
  if (key.substr(0, prefix.size()) != prefix || ends_with(key, kLockSuffix)) return false;
  if (is_removal(event)) {
    const std::lock_guard lock(mutex_);
    const std::size_t before = keys_.size();
    forget(key_hash(key));
    pending_[index].erase(std::string(key));
    return keys_.size() != before;
  }
  pending_[index].insert(std::string(key));
  return false;
}

// Reads the keys notifications named: PTTL + GETRANGE on the master that
// sent the notification (a Cluster key lives there).
bool RedisSessionStore::Worker::reread_pending() {
  bool changed = false;
  auto pending = std::move(pending_);
  pending_.clear();
  for (auto& [index, names] : pending) {
    if (index >= masters_.size() || !masters_[index].command) continue;
    changed = reread_keys(masters_[index], names) || changed;
  }
  return changed;
}

// PTTL, STRLEN and GETRANGE of each name on one master; true when the
// table changed.
bool RedisSessionStore::Worker::reread_keys(Master& master, const std::set<std::string>& names) {
  const std::string last_byte = window_last_byte();
  redisContext* context = master.command.get();
  for (const auto& name : names) {
    append(context, {"PTTL", name});
    append(context, {"STRLEN", name});
    append(context, {"GETRANGE", name, "0", last_byte});
  }
  std::vector<Reply> replies;
  std::string ignored;
  if (!read_replies(master, names.size() * 3, &replies, &ignored)) {
    master.command.reset();
    master.mode_known = false;
    pass_requested_.store(true);
    return false;
  }
  const std::int64_t now_ms = wall_ms();
  std::vector<std::pair<std::uint64_t, Entry>> classified;
  std::vector<std::uint64_t> gone;
  std::size_t i = 0;
  for (const auto& name : names) {
    const redisReply* ttl = replies[i].get();
    const redisReply* length = replies[i + 1].get();
    const redisReply* value = replies[i + 2].get();
    i += 3;
    const std::uint64_t hash = key_hash(name);
    const bool ttl_known = ttl->type == REDIS_REPLY_INTEGER;
    if (ttl_known && ttl->integer == -2) {
      gone.push_back(hash);
      continue;
    }
    if (!ttl_known || length->type != REDIS_REPLY_INTEGER || value->type != REDIS_REPLY_STRING) {
      if (is_wrong_type(value)) gone.push_back(hash);
      continue;
    }
    const auto size = static_cast<std::uint64_t>(length->integer);
    classified.emplace_back(hash, entry_of(context, name, std::string_view(value->str, value->len),
                                           activity_of(ttl->integer, now_ms, size == 0), size, false));
  }
  store_batch(gone, classified);
  return !gone.empty() || !classified.empty();
}

// ---------------------------------------------------------------- store

RedisSessionStore::RedisSessionStore(RedisStoreOptions options)
    : options_(std::move(options)), change_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  if (options_.max_read_bytes < 1) options_.max_read_bytes = 1;
  worker_ = std::make_unique<Worker>(options_, change_fd_.get());
}

RedisSessionStore::~RedisSessionStore() {
  if (thread_.joinable()) {
    worker_->stop();
    thread_.join();
  }
}

void RedisSessionStore::start() {
  if (thread_.joinable()) return;
  // Signals belong to the daemon's signalfd: the worker is created with all
  // of them blocked (a thread inherits the mask of its creator).
  sigset_t all, previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &previous);
  thread_ = std::thread([this] { worker_->run(); });
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

bool RedisSessionStore::run_pass_now() { return worker_->full_pass(); }

void RedisSessionStore::request_pass() { worker_->request_pass(); }

void RedisSessionStore::set_counting(bool counting) { worker_->set_counting(counting); }

void RedisSessionStore::consume_change() noexcept {
  std::uint64_t value = 0;
  [[maybe_unused]] const auto got = ::read(change_fd_.get(), &value, sizeof value);
}

RedisStoreStatus RedisSessionStore::status(std::int64_t now_wall_s) const { return worker_->status(now_wall_s); }

std::string RedisSessionStore::last_error() const { return worker_->last_error(); }

}  // namespace coupecircuit
