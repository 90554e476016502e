// coupecircuitd's link to its cluster ([cluster] in coupecircuitd.conf): one
// worker thread that owns the Redis connections, so that the daemon's loop
// never waits for Redis (a stalled server must not stall the heartbeat).
//
// The worker keeps one command connection to the master owning the slot of
// the cluster's hash tag (scanner/redis_connection.hpp) and one subscriber
// connection on the changes channel (in a Redis Cluster, PUBLISH reaches
// every node). It re-reads the control state every kClusterRereadS seconds
// as the safety net of pub/sub, refreshes this node's registry entry every
// kClusterHeartbeatMs (and at once after a change was applied, so that
// `coupecircuitctl` sees it quickly), and runs the periodic tasks added by
// other parts (the session lease). At rest: about 1.2 commands/s.
//
// Any fault makes the link unreachable: the daemon keeps the last control
// state it applied (fail static) and the worker reconnects with a backoff of
// 250 ms doubling up to 2 s.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "cluster_control.hpp"
#include "daemon_config.hpp"
#include "redis_connection.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {

struct ClusterLinkStatus {
  bool reachable = false;
  bool ever_reached = false;
  std::int64_t last_contact_wall_s = 0;  // last successful exchange, 0: never
  std::uint32_t nodes_live = 0;          // registered nodes whose entry has not expired
  std::string last_error;                // of the current outage, "" while reachable
};

// The Redis settings of [cluster] redis (with the auth_file password).
[[nodiscard]] redis::ServerSettings cluster_server_settings(const ClusterConfig& config);

class ClusterLink {
 public:
  // Periodic work on the worker thread, with the link's command connection
  // (already connected when run). Returns the milliseconds until its next run.
  class Task {
   public:
    virtual ~Task() = default;
    virtual std::uint64_t run(redis::SlotConnection& connection, std::int64_t now_wall_ms) = 0;
    // The connection was lost (or never made): what the task holds may be stale.
    virtual void on_unreachable() {}
    // The link stops (clean stop, reload): last words while still connected.
    virtual void on_stop(redis::SlotConnection& connection) { (void)connection; }
  };

  explicit ClusterLink(ClusterConfig config);
  ~ClusterLink();
  ClusterLink(const ClusterLink&) = delete;
  ClusterLink& operator=(const ClusterLink&) = delete;

  // Before start().
  void add_task(std::shared_ptr<Task> task);
  void start();

  // Readable when a newer control state arrived or reachability changed.
  [[nodiscard]] int change_fd() const noexcept { return change_fd_.get(); }
  void consume_change() noexcept;
  // The newest control state seen with a version above `applied`, if any.
  [[nodiscard]] std::optional<ClusterControl> newer_control(std::uint64_t applied) const;
  [[nodiscard]] ClusterLinkStatus status() const;

  // The control state in force on this node: written back when Redis has
  // none or an older one.
  void applied(const ClusterControl& control);
  // This node's report for the registry; `urgent` refreshes it at once.
  void report(const NodeReport& report, bool urgent);
  [[nodiscard]] const ClusterConfig& config() const noexcept { return config_; }

 private:
  class Worker;
  ClusterConfig config_;
  UniqueFd change_fd_;
  std::unique_ptr<Worker> worker_;
  std::thread thread_;
};

}  // namespace coupecircuit
