#include "cluster_link.hpp"

#include <poll.h>
#include <pthread.h>
#include <csignal>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>

#include "cluster_redis.hpp"
#include "log.hpp"
#include "snapshot.hpp"

namespace coupecircuit {
namespace {

constexpr std::uint64_t kMinBackoffMs = 250;
constexpr std::uint64_t kMaxBackoffMs = 2000;
constexpr std::uint64_t kRegistryTtlMs = 3ULL * kClusterHeartbeatMs;
// A node missing from the registry this long is no longer listed.
constexpr std::uint64_t kForgetNodeMs = 3600ULL * 1000ULL;

std::int64_t wall_ms() noexcept { return snapshot::realtime_now_ns() / 1'000'000; }
std::uint64_t mono_ms() noexcept { return snapshot::monotonic_now_ns() / 1'000'000; }

void write_one(int fd) noexcept {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto written = ::write(fd, &one, sizeof one);
}

void drain(int fd) noexcept {
  std::uint64_t value = 0;
  [[maybe_unused]] const auto got = ::read(fd, &value, sizeof value);
}

}  // namespace

redis::ServerSettings cluster_server_settings(const ClusterConfig& config) {
  redis::ServerSettings settings;
  settings.handler = config.redis.handler;
  if (!config.redis.targets.empty()) {
    settings.endpoints = config.redis.targets.front().endpoints;
    settings.credentials = redis::credentials_of(config.redis.targets.front(), config.auth_password);
  }
  settings.timeout_ms = config.timeout_ms;
  settings.password_setting = config.auth_file.empty() ? "auth= of [cluster] redis" : "[cluster] auth_file";
  return settings;
}

class ClusterLink::Worker {
 public:
  Worker(const ClusterConfig& config, int change_fd)
      : config_(config),
        change_fd_(change_fd),
        wake_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
        connection_(cluster_server_settings(config), control_key(config.name)),
        backoff_(kMinBackoffMs, kMaxBackoffMs) {}

  void add_task(std::shared_ptr<Task> task) { tasks_.push_back(TaskSlot{std::move(task), 0}); }

  void run() {
    while (!stop_.load()) {
      const std::uint64_t now = mono_ms();
      std::uint64_t next = now + 60'000;
      if (!connection_.connected() || !subscriber_) {
        if (now >= retry_at_) connect_all();  // on failure, retry_at_ is pushed back
        if (!connection_.connected() || !subscriber_) next = std::min(next, retry_at_);
      }
      if (connection_.connected() && subscriber_) next = std::min(next, run_due_work());
      wait_until(next);
    }
    if (connection_.connected()) {
      for (auto& slot : tasks_) slot.task->on_stop(connection_);
    }
  }

  void stop() {
    stop_.store(true);
    write_one(wake_fd_.get());
  }

  void report(const NodeReport& report, bool urgent) {
    {
      const std::lock_guard lock(mutex_);
      report_ = report;
    }
    if (urgent) {
      heartbeat_due_.store(true);
      write_one(wake_fd_.get());
    }
  }

  std::optional<ClusterControl> newer_control(std::uint64_t applied) const {
    const std::lock_guard lock(mutex_);
    if (!latest_ || latest_->version <= applied) return std::nullopt;
    return latest_;
  }

  void set_applied(const ClusterControl& control) {
    const std::lock_guard lock(mutex_);
    applied_ = control;
  }

  ClusterLinkStatus status() const {
    const std::lock_guard lock(mutex_);
    return status_;
  }

 private:
  struct TaskSlot {
    std::shared_ptr<Task> task;
    std::uint64_t next_ms;
  };

  // The command connection, then the subscription. False: unreachable.
  bool connect_all() {
    if (auto ready = connection_.ensure(); !ready) return fail(ready.error().message);
    if (!subscriber_ && !subscribe()) return false;
    next_reread_ = 0;  // read the state at once: changes may have been missed
    next_heartbeat_ = 0;
    return true;
  }

  bool subscribe() {
    auto context = connection_.open_another();
    if (!context) return fail(context.error().message);
    const std::string channel = changes_channel(config_.name);
    redis::Reply reply = redis::command(context->get(), {"SUBSCRIBE", channel});
    if (!reply || reply->type != REDIS_REPLY_ARRAY) {
      return fail(connection_.where() + ": SUBSCRIBE: " +
                  (reply ? redis::reply_text(reply.get()) : redis::connection_error(context->get())));
    }
    subscriber_ = std::move(*context);
    return true;
  }

  // The control state re-read, the registry heartbeat and the tasks, when
  // due. Returns when something is next due.
  std::uint64_t run_due_work() {
    std::uint64_t now = mono_ms();
    if (now >= next_reread_ && !reread_control()) return retry_at_;
    if ((heartbeat_due_.exchange(false) || now >= next_heartbeat_) && !heartbeat()) return retry_at_;
    now = mono_ms();
    std::uint64_t next = std::min(next_reread_, next_heartbeat_);
    for (auto& slot : tasks_) {
      if (now >= slot.next_ms) {
        slot.next_ms = mono_ms() + slot.task->run(connection_, wall_ms());
        if (!connection_.connected()) {
          fail(connection_.where() + ": the connection was lost");
          return retry_at_;
        }
      }
      next = std::min(next, slot.next_ms);
    }
    return next;
  }

  bool reread_control() {
    bool invalid = false;
    auto stored = cluster_redis::read_control(connection_, config_.name, &invalid);
    if (invalid) {
      // Connected, but the stored state is invalid: logged, the last good
      // one kept (and written back when known).
      reject(stored.error().message);
      next_reread_ = mono_ms() + static_cast<std::uint64_t>(kClusterRereadS) * 1000;
      const std::optional<ClusterControl> ours = applied();
      return ours ? restore(*ours) : succeed();
    }
    if (!stored) return fail(stored.error().message);
    next_reread_ = mono_ms() + static_cast<std::uint64_t>(kClusterRereadS) * 1000;
    if (*stored) offer(std::move(**stored));
    const std::optional<ClusterControl> ours = applied();
    if (ours && (!*stored || (*stored)->version < ours->version)) return restore(*ours);
    return succeed();
  }

  // Redis has no control state, or an older one, than the one in force
  // here: written back (the highest version among the nodes wins).
  bool restore(const ClusterControl& ours) {
    auto restored = cluster_redis::restore_control(connection_, config_.name, ours);
    if (!restored) return fail(restored.error().message);
    if (*restored) {
      log::notice(log::id::kClusterControlRestored, "cluster " + config_.name + ": Redis had no or an older control state: "
                                                    "version " + std::to_string(ours.version) + " restored from node " +
                                                    config_.node);
    }
    return succeed();
  }

  bool heartbeat() {
    NodeReport report;
    {
      const std::lock_guard lock(mutex_);
      report = report_;
    }
    report.node = config_.node;
    report.reported_at_ms = wall_ms();
    auto live = cluster_redis::heartbeat(connection_, config_.name, report, kRegistryTtlMs, kForgetNodeMs);
    if (!live) return fail(live.error().message);
    next_heartbeat_ = mono_ms() + kClusterHeartbeatMs;
    {
      const std::lock_guard lock(mutex_);
      status_.nodes_live = *live;
    }
    return succeed();
  }

  void reject(const std::string& why) {
    if (why == rejected_) return;
    rejected_ = why;
    log::warning(log::id::kClusterControlInvalid, "cluster " + config_.name + ": control state in Redis ignored: " + why);
  }

  std::optional<ClusterControl> applied() const {
    const std::lock_guard lock(mutex_);
    return applied_;
  }

  // A control state read or received: kept when newer than the last one.
  void offer(ClusterControl control) {
    bool newer = false;
    {
      const std::lock_guard lock(mutex_);
      newer = !latest_ || control.version > latest_->version;
      if (newer) latest_ = std::move(control);
    }
    if (newer) write_one(change_fd_);
  }

  void offer_text(const std::string& text) {
    auto control = parse_cluster_control(text);
    if (!control) {
      reject("published: " + control.error().message);
      return;
    }
    offer(std::move(*control));
  }

  void wait_until(std::uint64_t deadline) {
    const std::uint64_t now = mono_ms();
    const int timeout = deadline > now ? static_cast<int>(std::min<std::uint64_t>(deadline - now, 60'000)) : 0;
    pollfd fds[2] = {{wake_fd_.get(), POLLIN, 0}, {subscriber_ ? subscriber_->fd : -1, POLLIN, 0}};
    if (::poll(fds, 2, timeout) <= 0) return;
    if ((fds[0].revents & POLLIN) != 0) drain(wake_fd_.get());
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) read_messages();
  }

  void read_messages() {
    if (redisBufferRead(subscriber_.get()) != REDIS_OK) {
      fail(connection_.where() + ": subscription: " + redis::connection_error(subscriber_.get()));
      return;
    }
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(subscriber_.get(), &raw) != REDIS_OK) {
        fail(connection_.where() + ": subscription: protocol error");
        return;
      }
      if (raw == nullptr) return;
      const redis::Reply message(static_cast<redisReply*>(raw));
      if (message->type == REDIS_REPLY_ARRAY && message->elements == 3 &&
          redis::reply_text(message->element[0]) == "message" && message->element[2]->type == REDIS_REPLY_STRING) {
        offer_text(redis::reply_text(message->element[2]));
      }
    }
  }

  bool succeed() {
    backoff_.reset();
    bool changed = false;
    {
      const std::lock_guard lock(mutex_);
      changed = !status_.reachable;
      status_.reachable = true;
      status_.ever_reached = true;
      status_.last_contact_wall_s = wall_ms() / 1000;
      status_.last_error.clear();
    }
    if (changed) {
      log::notice(log::id::kClusterReachable, "cluster " + config_.name + ": Redis " + connection_.where() +
                                                  " reachable; node " + config_.node + " registered");
      write_one(change_fd_);
    }
    return true;
  }

  // Drops both connections and schedules a new attempt; logs the first
  // error of an outage.
  bool fail(const std::string& why) {
    connection_.reset();
    subscriber_.reset();
    retry_at_ = mono_ms() + backoff_.next();
    for (auto& slot : tasks_) slot.task->on_unreachable();
    bool first = false;
    {
      const std::lock_guard lock(mutex_);
      first = status_.reachable || status_.last_error.empty();
      status_.reachable = false;
      if (status_.last_error.empty()) status_.last_error = why;
    }
    if (first) {
      log::error(log::id::kClusterUnreachable,
                 "cluster " + config_.name + ": " + why + " (" + config_.where +
                     ": [cluster] redis); keeping the last known control state, retrying");
      write_one(change_fd_);
    }
    return false;
  }

  ClusterConfig config_;
  int change_fd_;
  UniqueFd wake_fd_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> heartbeat_due_{true};
  redis::SlotConnection connection_;
  redis::Context subscriber_;
  redis::Backoff backoff_;
  std::uint64_t retry_at_ = 0;
  std::uint64_t next_reread_ = 0;
  std::uint64_t next_heartbeat_ = 0;
  std::vector<TaskSlot> tasks_;
  std::string rejected_;  // the last invalid control state logged

  mutable std::mutex mutex_;
  std::optional<ClusterControl> latest_;
  std::optional<ClusterControl> applied_;  // in force on this node, for restore()
  ClusterLinkStatus status_;
  NodeReport report_;
};

ClusterLink::ClusterLink(ClusterConfig config)
    : config_(std::move(config)), change_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {
  worker_ = std::make_unique<Worker>(config_, change_fd_.get());
}

ClusterLink::~ClusterLink() {
  if (thread_.joinable()) {
    worker_->stop();
    thread_.join();
  }
}

void ClusterLink::add_task(std::shared_ptr<Task> task) { worker_->add_task(std::move(task)); }

void ClusterLink::start() {
  if (thread_.joinable()) return;
  // Signals belong to the daemon's signalfd: the worker starts with all of
  // them blocked (a thread inherits the mask of its creator).
  sigset_t all;
  sigset_t previous;
  sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, &previous);
  thread_ = std::thread([this] { worker_->run(); });
  ::pthread_sigmask(SIG_SETMASK, &previous, nullptr);
}

void ClusterLink::consume_change() noexcept { drain(change_fd_.get()); }

std::optional<ClusterControl> ClusterLink::newer_control(std::uint64_t applied) const {
  return worker_->newer_control(applied);
}

ClusterLinkStatus ClusterLink::status() const { return worker_->status(); }

void ClusterLink::applied(const ClusterControl& control) { worker_->set_applied(control); }

void ClusterLink::report(const NodeReport& report, bool urgent) { worker_->report(report, urgent); }

}  // namespace coupecircuit
