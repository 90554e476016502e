// This node's part in a cluster, as the daemon's loop sees it: the link to
// Redis (scanner/cluster_link.hpp), the last cluster control state applied
// (mirrored in <state>.cluster, read back at start: fail static), the local
// layer's "changed while Redis was unreachable" mark, and the snapshot's
// cluster block. Runs on the daemon's thread only; never waits for Redis.
//
// Precedence: the cluster state applies under the node's local layer (the
// state file, written by `coupecircuitctl … --local`): a local cut cuts this
// node even when the cluster's is off (shown as local), a local threshold
// override replaces the cluster's field by field. A local change made while
// Redis is unreachable stays in force when Redis comes back; it is logged
// then (CC0406) and flagged (kClusterLocalChangeUnsynced) until the local
// layer is changed again with Redis reachable, or emptied.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "cluster_control.hpp"
#include "cluster_lease_task.hpp"
#include "cluster_link.hpp"
#include "daemon_config.hpp"
#include "snapshot_layout.hpp"
#include "state_file.hpp"

namespace coupecircuit {

// The session lease (scanner/cluster_lease_task.hpp): only with sessions
// in Redis and a worker.
struct LeaseOptions {
  bool enabled = false;
  std::uint32_t stale_after_ms = 30'000;
  bool operator==(const LeaseOptions&) const = default;
};

class ClusterNode {
 public:
  // (Re)configures: a new link when [cluster] changed, none outside a
  // cluster. `start_worker` false: no thread, no Redis (--once).
  void configure(const ClusterConfig& config, const std::string& state_path, bool start_worker,
                 const LeaseOptions& lease = {});
  // Sessions counted by the lease holder only (the store must start idle).
  [[nodiscard]] bool counts_by_lease() const noexcept { return lease_ != nullptr; }
  // The Redis store whose counting follows the lease (nullptr before it goes away).
  void attach_store(RedisSessionStore* store) const;
  // The cluster's session counts in the payload publish_store() filled.
  void apply_lease(const RedisStoreStatus& own, snapshot::Payload& payload, SessionCounts& counts) const;
  [[nodiscard]] bool joined() const noexcept { return link_ != nullptr; }
  [[nodiscard]] int change_fd() const noexcept { return link_ ? link_->change_fd() : -1; }
  [[nodiscard]] ClusterLink* link() const noexcept { return link_.get(); }

  // The local layer, each time the state file was read; `changed`: its
  // content differs from the previous read.
  void local_state_read(const ControlState& local, bool changed);
  // The link signalled. True: what is published changed.
  bool handle_change();

  // The cut and overrides in force, and the cluster block.
  void fill(const ControlState& local, snapshot::Payload& payload) const;
  // What was published, reported to the registry (at once after a change).
  void published(const snapshot::Payload& payload);

 private:
  void save_mirror();
  void log_unsynced_kept() const;

  ClusterConfig config_;
  std::string mirror_path_;
  std::unique_ptr<ClusterLink> link_;
  std::shared_ptr<cluster::SessionLease> lease_;
  LeaseOptions lease_options_;
  std::optional<ClusterControl> applied_;
  std::int64_t local_unsynced_since_ = 0;
  ControlState local_;
  bool reachable_ = false;
  bool report_urgent_ = true;
};

}  // namespace coupecircuit
