// The cluster's shared control state and node registry, as kept in Redis
// (every key carries the hash tag {<cluster>}, so that in a Redis Cluster
// they all live in one hash slot and one Lua script may touch several):
//
//   coupecircuit:{<cluster>}:control     the control state (JSON below)
//   coupecircuit:{<cluster>}:changes     channel: each new control state
//   coupecircuit:{<cluster>}:node:<node> a node's last report (short TTL)
//   coupecircuit:{<cluster>}:nodes       sorted set: node -> last seen (ms)
//
// Control state, one line of JSON:
//   {"format":"coupecircuit-control/1","version":12,
//    "changed_by":{"node":"web1","user":"alice"},"changed_at_ms":1700000000000,
//    "cut":{"active":true,"reason":"DB maintenance","since":1700000000},
//    "thresholds":{"global":{"sessions":500},"vhosts":{"www.example.org":{"load":"8.00"}}}}
// "cut" and "thresholds" are those of the state file (common/state_file.hpp).
// The version only goes up: every write is a compare-and-set on it.
//
// Each node keeps its own local control state in the state file (written by
// `coupecircuitctl … --local`, or by coupecircuitctl outside a cluster), and
// mirrors the last cluster state it applied in a file beside it
// (<state>.cluster), so that a restart without Redis keeps it. What is in
// force is effective_control(): a cut from either layer cuts; a local
// threshold override replaces the cluster's, field by field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"
#include "state_file.hpp"

namespace coupecircuit {

inline constexpr std::string_view kControlFormat = "coupecircuit-control/1";
inline constexpr std::string_view kNodeReportFormat = "coupecircuit-node/1";
inline constexpr std::string_view kMirrorFormat = "coupecircuit-cluster-mirror/1";

[[nodiscard]] std::string cluster_key_prefix(std::string_view cluster);  // "coupecircuit:{<cluster>}:"
[[nodiscard]] std::string control_key(std::string_view cluster);
[[nodiscard]] std::string changes_channel(std::string_view cluster);
[[nodiscard]] std::string node_key(std::string_view cluster, std::string_view node);
[[nodiscard]] std::string nodes_index_key(std::string_view cluster);

struct ClusterControl {
  std::uint64_t version = 0;  // 0: never written
  ControlState state;         // cut and threshold overrides
  std::string changed_by_node;
  std::string changed_by_user;
  std::int64_t changed_at_ms = 0;
  bool operator==(const ClusterControl&) const = default;
};

// Strict: unknown keys, a wrong format or bad values are errors.
[[nodiscard]] Result<ClusterControl> parse_cluster_control(std::string_view json_text);
[[nodiscard]] std::string serialize_cluster_control(const ClusterControl& control);  // one line

// What a node reports in the registry, refreshed with its heartbeat.
struct NodeReport {
  std::string node;
  std::string helper_version;
  std::uint32_t pid = 0;
  std::string state;  // ok, cut, over_threshold, sessions_unknown (as `coupecircuitctl status`)
  std::uint32_t load1_centi = 0;
  bool sessions_known = false;
  std::uint64_t sessions_active = 0;
  std::uint64_t snapshot_sequence = 0;
  std::uint64_t control_version = 0;  // cluster control state applied here
  bool cut = false;
  bool cut_local = false;
  bool local_unsynced = false;
  std::string lease_holder;  // as this node sees it, "" when unknown
  std::int64_t reported_at_ms = 0;
  bool operator==(const NodeReport&) const = default;
};
[[nodiscard]] Result<NodeReport> parse_node_report(std::string_view json_text);
[[nodiscard]] std::string serialize_node_report(const NodeReport& report);

// The state in force on a node: the cluster's (when known) under the
// node's local layer. cut_local: the cut in force comes from the local
// layer only.
struct EffectiveControl {
  ControlState state;
  bool cut_local = false;
};
[[nodiscard]] EffectiveControl effective_control(const ControlState& local, const ClusterControl* cluster);

// The mirror file beside the state file: the last cluster state applied on
// this node, and since when a local change waits to be seen while Redis was
// unreachable (0: none).
struct ClusterMirror {
  std::string cluster;
  ClusterControl control;
  std::int64_t local_unsynced_since_wall_s = 0;
  bool operator==(const ClusterMirror&) const = default;
};
[[nodiscard]] std::string mirror_path_for(const std::string& state_path);  // <state>.cluster
[[nodiscard]] Result<ClusterMirror> parse_cluster_mirror(std::string_view json_text);
[[nodiscard]] std::string serialize_cluster_mirror(const ClusterMirror& mirror);
// A missing file: nullopt. Invalid: an error naming the file.
[[nodiscard]] Result<std::optional<ClusterMirror>> load_cluster_mirror(const std::string& path);
[[nodiscard]] Result<void> save_cluster_mirror(const std::string& path, const ClusterMirror& mirror);

}  // namespace coupecircuit
