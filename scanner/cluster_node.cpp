#include "cluster_node.hpp"

#include <unistd.h>

#include <cstring>

#include "decimal.hpp"
#include "log.hpp"
#include "snapshot.hpp"
#include "thresholds.hpp"

namespace coupecircuit {
namespace {

std::int64_t wall_s() noexcept { return snapshot::realtime_now_ns() / 1'000'000'000LL; }

bool is_empty(const ControlState& state) noexcept { return !state.cut_active && state.global.empty() && state.vhosts.empty(); }

std::string describe(const ControlState& state) {
  std::string text = state.cut_active ? "cut on" + (state.cut_reason.empty() ? "" : " (" + state.cut_reason + ")")
                                      : std::string("cut off");
  if (!state.global.empty() || !state.vhosts.empty()) {
    text += ", " + std::to_string((state.global.empty() ? 0U : 1U) + state.vhosts.size()) + " threshold override(s)";
  }
  return text;
}

// The state name `coupecircuitctl status` would give this payload.
std::string state_name(const snapshot::Payload& payload) {
  if (!snapshot::sessions_known(payload)) return "sessions_unknown";
  if ((payload.flags & snapshot::kFlagCutActive) != 0) return "cut";
  const snapshot::ThresholdSet no_directive{};
  const EffectiveThresholds global = resolve_thresholds(payload, nullptr, no_directive);
  return check_thresholds(payload, global, 0, 0).over ? "over_threshold" : "ok";
}

}  // namespace

void ClusterNode::configure(const ClusterConfig& config, const std::string& state_path, bool start_worker,
                            const LeaseOptions& lease) {
  const std::string mirror_path = mirror_path_for(state_path);
  const LeaseOptions lease_wanted = start_worker ? lease : LeaseOptions{};
  if (!config.enabled()) {
    link_.reset();
    lease_.reset();
    config_ = config;
    applied_.reset();
    return;
  }
  if (link_ && config == config_ && mirror_path == mirror_path_ && lease_wanted == lease_options_) {
    return;  // unchanged: keep the running link
  }
  link_.reset();  // a clean stop: releases the lease
  lease_.reset();
  lease_options_ = lease_wanted;
  config_ = config;
  mirror_path_ = mirror_path;
  applied_.reset();
  local_unsynced_since_ = 0;
  auto mirror = load_cluster_mirror(mirror_path_);
  if (!mirror) {
    log::error(log::id::kClusterMirrorError, mirror.error().message + " (starting without the last cluster state)");
  } else if (*mirror && (*mirror)->cluster == config_.name) {
    if ((*mirror)->control.version > 0) applied_ = (*mirror)->control;
    local_unsynced_since_ = (*mirror)->local_unsynced_since_wall_s;
  }
  link_ = std::make_unique<ClusterLink>(config_);
  if (lease_wanted.enabled) {
    lease_ = std::make_shared<cluster::SessionLease>(
        cluster::LeaseSettings{config_.name, config_.node, config_.lease_ttl_s * 1000, {}}, lease_wanted.stale_after_ms);
    link_->add_task(lease_);
  }
  if (applied_) link_->applied(*applied_);
  log::info(log::id::kClusterJoined,
            "cluster " + config_.name + ": node " + config_.node + ", Redis " + to_string(config_.redis.targets.front().endpoints.front()) +
                (config_.redis.handler == SaveHandler::rediscluster ? " (Redis Cluster seed)" : "") +
                ", control state " +
                (applied_ ? "version " + std::to_string(applied_->version) + " from " + mirror_path_ + ": " + describe(applied_->state)
                          : std::string("not known yet")));
  if (start_worker) link_->start();
  reachable_ = false;
  report_urgent_ = true;
}

void ClusterNode::attach_store(RedisSessionStore* store) const {
  if (lease_) lease_->attach_store(store);
}

void ClusterNode::apply_lease(const RedisStoreStatus& own, snapshot::Payload& payload, SessionCounts& counts) const {
  if (lease_) lease_->apply(own, payload, counts, snapshot::monotonic_now_ns() / 1'000'000);
}

void ClusterNode::local_state_read(const ControlState& local, bool changed) {
  local_ = local;
  if (!link_) return;
  const std::int64_t before = local_unsynced_since_;
  if (is_empty(local)) {
    local_unsynced_since_ = 0;
  } else if (changed) {
    if (link_->status().reachable) {
      local_unsynced_since_ = 0;
    } else {
      local_unsynced_since_ = wall_s();
      log::warning(log::id::kClusterLocalUnsynced,
                   "cluster " + config_.name + ": node-local change (" + describe(local) +
                       ") while Redis is unreachable: in force on this node; reported when Redis is back");
    }
  }
  if (local_unsynced_since_ != before) save_mirror();
  report_urgent_ = report_urgent_ || changed;
}

bool ClusterNode::handle_change() {
  if (!link_) return false;
  link_->consume_change();
  const ClusterLinkStatus status = link_->status();
  bool changed = status.reachable != reachable_;
  if (status.reachable && !reachable_ && local_unsynced_since_ != 0) log_unsynced_kept();
  reachable_ = status.reachable;
  auto newer = link_->newer_control(applied_ ? applied_->version : 0);
  if (newer) {
    const bool cut_moved = !applied_ || applied_->state.cut_active != newer->state.cut_active;
    applied_ = std::move(*newer);
    link_->applied(*applied_);
    save_mirror();
    const std::string by = applied_->changed_by_user.empty() && applied_->changed_by_node.empty()
                               ? std::string()
                               : " by " + applied_->changed_by_user + "@" + applied_->changed_by_node;
    log::notice(log::id::kClusterControlApplied, "cluster " + config_.name + ": control state version " +
                                                     std::to_string(applied_->version) + " applied" + by + ": " +
                                                     describe(applied_->state) + (cut_moved ? "" : " (cut unchanged)"));
    report_urgent_ = true;
    changed = true;
  }
  return changed;
}

void ClusterNode::log_unsynced_kept() const {
  log::notice(log::id::kClusterLocalReported,
              "cluster " + config_.name + ": Redis is back; the node-local change made at " +
                  std::to_string(local_unsynced_since_) + " (unix time) while it was unreachable stays in force on " +
                  config_.node + " only: " + describe(local_) +
                  "; `coupecircuitctl cut on|threshold set` makes it cluster-wide, the same with --local undoes it");
}

void ClusterNode::fill(const ControlState& local, snapshot::Payload& payload) const {
  const EffectiveControl effective = effective_control(local, link_ && applied_ ? &*applied_ : nullptr);
  apply_state_to_payload(effective.state, payload);
  if (!link_) return;
  snapshot::ClusterState& block = payload.cluster;
  snapshot::copy_text(block.cluster_name, config_.name);
  snapshot::copy_text(block.node_name, config_.node);
  const ClusterLinkStatus status = link_->status();
  block.flags |= snapshot::kClusterJoined;
  if (status.reachable) block.flags |= snapshot::kClusterRedisReachable;
  if (effective.cut_local) block.flags |= snapshot::kClusterCutLocal;
  if (local_unsynced_since_ != 0) block.flags |= snapshot::kClusterLocalChangeUnsynced;
  block.nodes_live = status.nodes_live;
  block.control_version = applied_ ? applied_->version : 0;
  block.redis_last_contact_wall_s = status.last_contact_wall_s;
}

void ClusterNode::published(const snapshot::Payload& payload) {
  if (!link_) return;
  NodeReport report;
  report.node = config_.node;
  report.helper_version = COUPECIRCUIT_VERSION;
  report.pid = static_cast<std::uint32_t>(::getpid());
  report.state = state_name(payload);
  report.load1_centi = payload.load_centi[0];
  report.sessions_known = snapshot::sessions_known(payload);
  report.sessions_active = payload.sessions_active;
  report.snapshot_sequence = payload.snapshot_sequence;
  report.control_version = payload.cluster.control_version;
  report.cut = (payload.flags & snapshot::kFlagCutActive) != 0;
  report.cut_local = (payload.cluster.flags & snapshot::kClusterCutLocal) != 0;
  report.local_unsynced = (payload.cluster.flags & snapshot::kClusterLocalChangeUnsynced) != 0;
  report.lease_holder = std::string(payload.cluster.lease_holder, ::strnlen(payload.cluster.lease_holder,
                                                                            sizeof payload.cluster.lease_holder));
  link_->report(report, report_urgent_);
  report_urgent_ = false;
}

void ClusterNode::save_mirror() {
  if (!link_) return;
  const ClusterMirror mirror{config_.name, applied_ ? *applied_ : ClusterControl{}, local_unsynced_since_};
  if (auto saved = save_cluster_mirror(mirror_path_, mirror); !saved) {
    log::error(log::id::kClusterMirrorError, "cannot write " + mirror_path_ + ": " + saved.error().message +
                                                 " (a restart without Redis would not know the cluster state)");
  }
}

}  // namespace coupecircuit
