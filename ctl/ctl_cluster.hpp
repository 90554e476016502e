// coupecircuitctl in a cluster ([cluster] in coupecircuitd.conf): changes of
// the shared control state written to Redis (compare-and-set, published to
// every helper), the wait until every live node applied them, and
// `status --cluster`.
#pragma once

#include <functional>
#include <string>

#include "daemon_config.hpp"
#include "snapshot_layout.hpp"
#include "state_file.hpp"

namespace coupecircuit::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitAttention = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnknown = 3;

using ControlChange = std::function<void(ControlState&)>;

// Applies `change` to the cluster's control state in Redis and waits up to
// wait_s for every live node to report the new version. Exit status: 0
// applied everywhere; 1 Redis unreachable (nothing changed) or a node did
// not confirm (named).
[[nodiscard]] int cluster_modify(const ClusterConfig& cluster, const ControlChange& change, const std::string& what,
                                 double wait_s);

// One line per registered node. Exit status: 0 every live node applied the
// current version and none is missing; 1 otherwise; 3 Redis unreachable.
[[nodiscard]] int cluster_status(const ClusterConfig& cluster, bool as_json);

// The "cluster:" lines of `coupecircuitctl status` ("" outside a cluster).
[[nodiscard]] std::string cluster_status_text(const snapshot::Payload& payload);

}  // namespace coupecircuit::ctl
