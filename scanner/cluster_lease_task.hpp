// The session lease as coupecircuitd runs it: on the cluster link's worker
// thread (scanner/cluster_link.hpp) it takes or renews the lease, publishes
// this node's counts while it holds it and reads the holder's counts while
// it does not; on the daemon's thread it tells what the snapshot shows.
//
// Only with a Redis session store and [cluster]. The Redis store counts only
// while this node holds the lease (RedisSessionStore::set_counting). The
// holder's own counts are used once its store has completed a pass since the
// lease was acquired; until then, and on every other node, the holder's
// published counts are used while fresh (age on Redis's clock at the read,
// then on this node's monotonic clock). Older than stale_after, or never
// read: sessions unknown (kFlagSessionsUnavailable with kClusterCountsStale,
// fail open, flagged).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

#include "cluster_lease.hpp"
#include "cluster_link.hpp"
#include "redis_store.hpp"
#include "snapshot_layout.hpp"

namespace coupecircuit::cluster {

inline constexpr std::uint32_t kCountsReadMs = 1000;  // a reader's period
inline constexpr std::uint32_t kHolderPollMs = 100;   // a holder looks for new counts to publish this often

class SessionLease final : public ClusterLink::Task {
 public:
  // stale_after_ms: counts older than this are missing; the holder
  // republishes unchanged counts every third of it.
  SessionLease(LeaseSettings settings, std::uint32_t stale_after_ms);

  // ---- ClusterLink::Task, on the link's worker thread with its connection.
  std::uint64_t run(redis::SlotConnection& connection, std::int64_t now_wall_ms) override;
  void on_unreachable() override;
  void on_stop(redis::SlotConnection& connection) override;

  // ---- The link's worker thread.
  // Whatever is due: lease step, publish, read. Returns the milliseconds
  // until something is next due. A Redis failure ends the round (the link
  // reconnects).
  std::uint64_t run(const ScriptRunner& run, std::uint64_t now_ms);
  // The connection was lost: the lease is kept locally until its TTL runs
  // out, the counts in use age on.
  void unreachable(std::uint64_t now_ms);
  // Clean stop: compare-and-release, so that another node takes over at once.
  void release(const ScriptRunner& run);

  // ---- The daemon's thread.
  // The store whose counting follows the lease (nullptr: detach, before the
  // store goes away). It starts idle.
  void attach_store(RedisSessionStore* store);
  // Turns the payload that publish_store() filled from this node's store
  // into the cluster's view: own counts (the holder, after its first pass)
  // or the holder's, or none (stale); the lease fields of the cluster block.
  // `counts` is the daemon's working copy (files_seen already moved to
  // keys_seen).
  void apply(const RedisStoreStatus& own, snapshot::Payload& payload, SessionCounts& counts, std::uint64_t now_ms);

  [[nodiscard]] const LeaseSettings& settings() const noexcept { return lease_.settings(); }

 private:
  void set_holding(bool holding, std::uint64_t now_ms);
  void publish_due(const ScriptRunner& run, std::uint64_t now_ms);
  void read_due(const ScriptRunner& run, std::uint64_t now_ms);
  void apply_peer(snapshot::Payload& payload, SessionCounts& counts, std::uint64_t now_ms);

  const std::uint32_t stale_after_ms_;
  const std::uint32_t refresh_ms_;

  // Worker thread only.
  redis::SlotConnection* connection_ = nullptr;
  ScriptCache scripts_;
  Lease lease_;
  CountsReader reader_;
  std::uint64_t next_read_ms_ = 0;
  std::uint64_t last_publish_ms_ = 0;
  std::optional<ClusterCounts> last_published_;
  std::string invalid_logged_;

  // Shared, under mutex_.
  mutable std::mutex mutex_;
  RedisSessionStore* store_ = nullptr;
  bool holding_ = false;
  std::uint64_t valid_until_ms_ = 0;       // monotonic: the lease is not ours beyond
  std::int64_t holding_since_wall_ns_ = 0;
  std::string holder_;
  std::uint64_t fencing_ = 0;
  std::int64_t own_published_ms_ = 0;
  std::optional<ClusterCounts> offered_;  // the holder's counts, to publish
  std::optional<PeerCounts> peer_;         // the holder's counts as last read

  // Daemon thread only.
  bool stale_logged_ = false;
  std::int64_t stale_since_wall_s_ = 0;
};

}  // namespace coupecircuit::cluster
