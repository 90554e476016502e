#include "cluster_lease_task.hpp"

#include <algorithm>

#include "log.hpp"
#include "snapshot.hpp"

namespace coupecircuit::cluster {
namespace {

ClusterCounts counts_of(const RedisStoreStatus& own, const SessionCounts& counts, std::uint64_t keys_seen) {
  ClusterCounts out;
  out.counts = counts;
  out.counts.files_seen = keys_seen;
  out.masters_reached = own.masters_reached;
  out.masters_total = own.masters_total;
  out.last_pass_wall_ns = own.last_good_pass_wall_ns;
  out.last_pass_duration_us = own.last_pass_duration_us;
  out.values_read = own.keys_read_last_pass;
  out.bytes_read = own.bytes_read_last_pass;
  out.notifications = own.notifications;
  out.available = own.available;
  out.unavailable_since_wall_s = own.unavailable_since_wall_s;
  return out;
}

}  // namespace

SessionLease::SessionLease(LeaseSettings settings, std::uint32_t stale_after_ms)
    : stale_after_ms_(std::max<std::uint32_t>(stale_after_ms, 1000)),
      refresh_ms_(std::max<std::uint32_t>(stale_after_ms_ / 3, kCountsRefreshMs)),
      scripts_([this](const std::vector<std::string_view>& words) -> Result<redis::Reply> {
        if (connection_ == nullptr) return make_error("not connected");
        return connection_->run(words);
      }),
      lease_(std::move(settings)),
      reader_(lease_.keys(), stale_after_ms_) {}

std::uint64_t SessionLease::run(redis::SlotConnection& connection, std::int64_t now_wall_ms) {
  (void)now_wall_ms;  // the lease runs on the monotonic clock and Redis's
  connection_ = &connection;
  return run(scripts_.runner(), snapshot::monotonic_now_ns() / 1'000'000);
}

void SessionLease::on_unreachable() { unreachable(snapshot::monotonic_now_ns() / 1'000'000); }

void SessionLease::on_stop(redis::SlotConnection& connection) {
  connection_ = &connection;
  release(scripts_.runner());
}

void SessionLease::attach_store(RedisSessionStore* store) {
  const std::lock_guard lock(mutex_);
  store_ = store;
  if (store_ != nullptr) store_->set_counting(holding_);
}

void SessionLease::set_holding(bool holding, std::uint64_t now_ms) {
  {
    const std::lock_guard lock(mutex_);
    holder_ = holding ? lease_.settings().node : lease_.holder();
    fencing_ = holding ? lease_.fencing() : fencing_;
    valid_until_ms_ = holding ? lease_.valid_until_ms() : 0;
    if (holding == holding_) return;
    holding_ = holding;
    if (holding) holding_since_wall_ns_ = snapshot::realtime_now_ns();
    if (!holding) offered_.reset();
    if (store_ != nullptr) store_->set_counting(holding);
  }
  const std::string& cluster = lease_.settings().cluster;
  if (holding) {
    last_published_.reset();
    log::notice(log::id::kLeaseAcquired, "cluster " + cluster + ": this node holds the session lease (fencing " +
                                             std::to_string(lease_.fencing()) + "): it counts the sessions in Redis");
  } else {
    log::notice(log::id::kLeaseLost, "cluster " + cluster + ": this node no longer holds the session lease" +
                                         (lease_.holder().empty() ? std::string() : " (holder: " + lease_.holder() + ")") +
                                         ": it uses the holder's counts");
  }
  (void)now_ms;
}

std::uint64_t SessionLease::run(const ScriptRunner& run, std::uint64_t now_ms) {
  if (now_ms >= lease_.next_step_ms()) {
    const auto stepped = lease_.step(run, now_ms);
    set_holding(lease_.holding(now_ms), now_ms);
    if (!stepped) return kHolderPollMs;  // the link sees the lost connection
  } else if (!lease_.holding(now_ms)) {
    set_holding(false, now_ms);  // not renewed in time
  }
  if (lease_.holding(now_ms)) {
    publish_due(run, now_ms);
  } else if (now_ms >= next_read_ms_) {
    read_due(run, now_ms);
  }
  std::uint64_t next = lease_.next_step_ms();
  next = std::min(next, lease_.holding(now_ms) ? now_ms + kHolderPollMs : next_read_ms_);
  return next > now_ms ? next - now_ms : 0;
}

void SessionLease::publish_due(const ScriptRunner& run, std::uint64_t now_ms) {
  std::optional<ClusterCounts> offered;
  {
    const std::lock_guard lock(mutex_);
    offered = offered_;
  }
  if (!offered) return;  // no pass of its own yet
  const bool changed = offered != last_published_;
  const std::uint64_t since = now_ms - last_publish_ms_;
  if (!(last_publish_ms_ == 0 || (changed && since >= kCountsRefreshMs) || since >= refresh_ms_)) return;
  const auto outcome = lease_.publish(run, *offered, now_ms);
  if (!outcome) return;
  if (*outcome != Lease::PublishOutcome::published) {
    log::notice(log::id::kLeaseLost, "cluster " + lease_.settings().cluster + ": Redis refused this node's counts (" +
                                          (*outcome == Lease::PublishOutcome::lower_fencing ? "a higher fencing number "
                                                                                               "was published"
                                                                                             : "the lease is another's") +
                                          "): it stops counting");
    set_holding(false, now_ms);
    return;
  }
  last_publish_ms_ = now_ms;
  last_published_ = offered;
  const std::lock_guard lock(mutex_);
  own_published_ms_ = lease_.last_published_ms();
}

void SessionLease::read_due(const ScriptRunner& run, std::uint64_t now_ms) {
  next_read_ms_ = now_ms + kCountsReadMs;
  const auto outcome = reader_.read(run, now_ms);
  if (!outcome) return;
  if (*outcome == CountsReader::ReadOutcome::invalid && reader_.last_invalid() != invalid_logged_) {
    invalid_logged_ = reader_.last_invalid();
    log::warning(log::id::kLeaseCountsInvalid, "cluster " + lease_.settings().cluster +
                                                   ": the published session counts are invalid, ignored: " + invalid_logged_);
  }
  const std::lock_guard lock(mutex_);
  peer_ = reader_.current();
}

void SessionLease::unreachable(std::uint64_t now_ms) {
  // The lease stays ours until its TTL (counted from the last renewal sent);
  // run() is not called while unreachable, so the expiry is checked here
  // and in apply().
  if (!lease_.holding(now_ms)) set_holding(false, now_ms);
}

void SessionLease::release(const ScriptRunner& run) {
  const bool was_holding = lease_.holding(snapshot::monotonic_now_ns() / 1'000'000);
  if (!was_holding) return;
  if (lease_.release(run)) {
    log::notice(log::id::kLeaseLost, "cluster " + lease_.settings().cluster + ": session lease released on stop");
  }
  const std::lock_guard lock(mutex_);
  holding_ = false;
  if (store_ != nullptr) store_->set_counting(false);
}

void SessionLease::apply(const RedisStoreStatus& own, snapshot::Payload& payload, SessionCounts& counts,
                         std::uint64_t now_ms) {
  const std::lock_guard lock(mutex_);
  auto& cluster = payload.cluster;
  // The worker may be unable to run (Redis unreachable): the lease is not
  // ours beyond its TTL whatever the worker last said.
  if (holding_ && now_ms >= valid_until_ms_) {
    holding_ = false;
    holder_.clear();
    if (store_ != nullptr) store_->set_counting(false);
    log::notice(log::id::kLeaseLost, "cluster " + lease_.settings().cluster +
                                         ": the session lease could not be renewed within its TTL: this node stops counting");
  }
  const bool holding = holding_;
  snapshot::copy_text(cluster.lease_holder, holder_);
  if (holding && own.last_good_pass_wall_ns >= holding_since_wall_ns_) {
    cluster.flags |= snapshot::kClusterLeaseHolder;
    cluster.lease_fencing = fencing_;
    cluster.counts_published_wall_ms = own_published_ms_;
    offered_ = counts_of(own, counts, payload.keys_seen);
    if (stale_logged_) {
      stale_logged_ = false;
      log::notice(log::id::kLeaseCountsFresh, "cluster " + lease_.settings().cluster + ": sessions counted again (here)");
    }
    return;
  }
  if (holding) cluster.flags |= snapshot::kClusterLeaseHolder;  // its first pass is running
  apply_peer(payload, counts, now_ms);
}

void SessionLease::apply_peer(snapshot::Payload& payload, SessionCounts& counts, std::uint64_t now_ms) {
  auto& cluster = payload.cluster;
  // What publish_store() took from this node's idle store does not count.
  payload.flags &= ~static_cast<std::uint32_t>(snapshot::kFlagSessionsUnavailable);
  payload.sessions_unavailable_since_wall_s = 0;
  const bool fresh = peer_ && peer_->age_ms + (now_ms > peer_->read_at_ms ? now_ms - peer_->read_at_ms : 0) <= stale_after_ms_;
  if (peer_) {
    cluster.lease_fencing = peer_->fencing;
    cluster.counts_published_wall_ms = peer_->published_ms;
  }
  if (!fresh) {
    counts = SessionCounts{};
    payload.keys_seen = 0;
    payload.store_masters_reached = 0;
    payload.store_values_read = 0;
    payload.store_bytes_read = 0;
    payload.store_flags &= ~static_cast<std::uint32_t>(snapshot::kStoreNotifications);
    payload.last_scan_wall_ns = peer_ ? peer_->counts.last_pass_wall_ns : 0;
    payload.last_scan_duration_us = 0;
    cluster.flags |= snapshot::kClusterCountsStale;
    payload.flags |= snapshot::kFlagSessionsUnavailable;
    const std::int64_t now_s = snapshot::realtime_now_ns() / 1'000'000'000LL;
    if (stale_since_wall_s_ == 0) stale_since_wall_s_ = now_s;
    payload.sessions_unavailable_since_wall_s = stale_since_wall_s_;
    if (!stale_logged_) {
      stale_logged_ = true;
      log::warning(log::id::kLeaseCountsStale,
                   "cluster " + lease_.settings().cluster + ": " +
                       (peer_ ? "the lease holder's session counts are older than " + std::to_string(stale_after_ms_) + " ms"
                              : std::string("no session counts published yet")) +
                       ": SESSIONS_ACTIVES is not exported until fresh counts arrive");
    }
    return;
  }
  stale_since_wall_s_ = 0;
  if (stale_logged_) {
    stale_logged_ = false;
    log::notice(log::id::kLeaseCountsFresh,
                "cluster " + lease_.settings().cluster + ": sessions counted again (by " + peer_->holder + ")");
  }
  const ClusterCounts& peer = peer_->counts;
  cluster.flags |= snapshot::kClusterCountsFromPeer;
  counts = peer.counts;
  payload.keys_seen = counts.files_seen;
  counts.files_seen = 0;
  payload.store_masters_reached = peer.masters_reached;
  payload.store_masters_total = peer.masters_total;
  payload.last_scan_wall_ns = peer.last_pass_wall_ns;
  payload.last_scan_duration_us = peer.last_pass_duration_us;
  payload.store_values_read = peer.values_read;
  payload.store_bytes_read = peer.bytes_read;
  payload.store_flags = peer.notifications ? (payload.store_flags | snapshot::kStoreNotifications)
                                           : (payload.store_flags & ~static_cast<std::uint32_t>(snapshot::kStoreNotifications));
  if (!peer.available) {
    payload.flags |= snapshot::kFlagSessionsUnavailable;
    payload.sessions_unavailable_since_wall_s = peer.unavailable_since_wall_s;
  }
}

}  // namespace coupecircuit::cluster
