#include "snapshot_json.hpp"

#include <cstring>
#include <string>

#include "decimal.hpp"
#include "probe_table.hpp"
#include "snapshot.hpp"

namespace coupecircuit {
namespace {

using nlohmann::json;

constexpr const char* kClassNames[] = {"empty", "anonymous", "unknown", "authenticated"};
constexpr const char* kPsiNames[] = {"cpu", "memory", "io"};

// A text field of the snapshot, read within its array even when a damaged
// file left it without its NUL.
template <std::size_t N>
std::string field_text(const char (&field)[N]) {
  return std::string(field, ::strnlen(field, N));
}

json threshold_set_json(const snapshot::ThresholdSet& set) {
  json node = json::object();
  if (set.has_sessions != 0) node["sessions"] = set.sessions;
  if (set.has_load != 0) node["load"] = field_text(set.load_text);
  return node;
}

json sessions_json(const snapshot::Payload& p) {
  json active = json::object();
  json inactive = json::object();
  for (std::size_t i = 0; i < 4; ++i) {
    active[kClassNames[i]] = p.count_active[i];
    inactive[kClassNames[i]] = p.count_inactive[i];
  }
  // Inactive when first seen: stat'ed, never read, so of no known class.
  inactive["unread"] = p.count_inactive_unread;
  return {{"known", snapshot::sessions_known(p)},
          {"active_authenticated", p.sessions_active},
          {"files_seen", p.files_seen},
          {"keys_seen", p.keys_seen},
          {"active_minutes", p.active_minutes},
          {"active", active},
          {"inactive", inactive},
          {"scan_failed", (p.flags & snapshot::kFlagScanFailed) != 0}};
}

// Where sessions are counted; for Redis, whether it answers. No address or
// password: the snapshot carries neither.
json store_json(const snapshot::Payload& p) {
  json store = {{"kind", store_kind_name(p.store_kind)}, {"sessions_known", snapshot::sessions_known(p)}};
  if (p.store_kind == snapshot::kStoreFiles) {
    store["files_seen"] = p.files_seen;
    return store;
  }
  const bool unavailable = (p.flags & snapshot::kFlagSessionsUnavailable) != 0;
  store["available"] = !unavailable;
  store["unavailable_since"] = unavailable ? p.sessions_unavailable_since_wall_s : 0;
  const std::int64_t now_ns = snapshot::realtime_now_ns();
  store["last_good_pass_age_seconds"] =
      p.last_scan_wall_ns > 0 ? json(static_cast<double>(now_ns - p.last_scan_wall_ns) / 1e9) : json(nullptr);
  store["masters_reached"] = p.store_masters_reached;
  store["masters_total"] = p.store_masters_total;
  store["keys_seen"] = p.keys_seen;
  store["pass_duration_us"] = p.last_scan_duration_us;
  store["values_read_last_pass"] = p.store_values_read;
  store["bytes_read_last_pass"] = p.store_bytes_read;
  store["notifications"] = (p.store_flags & snapshot::kStoreNotifications) != 0;
  return store;
}

json pressure_json(const snapshot::Payload& p) {
  const bool available = (p.flags & snapshot::kFlagPsiAvailable) != 0;
  json pressure = {{"available", available}};
  if (available) {
    for (std::size_t i = 0; i < 3; ++i) pressure[kPsiNames[i]] = centi_to_string(p.psi_some_avg10_centi[i]);
  }
  return pressure;
}

json thresholds_json(const snapshot::Payload& p) {
  json vhosts = json::object();
  for (std::uint32_t i = 0; i < p.vhost_override_count && i < snapshot::kMaxVhostOverrides; ++i) {
    vhosts[field_text(p.vhost_overrides[i].name)] = threshold_set_json(p.vhost_overrides[i].thresholds);
  }
  return {{"global", threshold_set_json(p.global_override)}, {"vhosts", vhosts}};
}

// The probe table: one object per probe in the order of the configuration.
json probes_json(const snapshot::Payload& p) {
  const bool configured = probe_table::configured(p);
  json checks = json::array();
  json down = json::array();
  for (std::uint32_t i = 0; configured && i < probe_table::count(p); ++i) {
    const auto& entry = p.probes[i];
    json check = {{"name", std::string(probe_table::text(entry.name))},
                  {"status", probe_table::status_name(entry.status)},
                  {"critical", (entry.flags & snapshot::kProbeCritical) != 0},
                  {"since", entry.since_wall_s},
                  {"latency_us", entry.latency_us},
                  {"error", std::string(probe_table::text(entry.last_error))}};
    if (probe_table::has_saturation(entry)) check["saturation_percent"] = entry.saturation_pct;
    if (entry.status == snapshot::kProbeDown) down.push_back(check["name"]);
    checks.push_back(std::move(check));
  }
  return {{"configured", configured},
          {"stale", configured && !probe_table::fresh(p)},
          {"critical_down", (p.probe_flags & snapshot::kProbesCriticalDown) != 0},
          {"updated", p.probes_updated_wall_s},
          {"down", down},
          {"checks", checks}};
}

// Cluster membership: names, control-state version, Redis reachability and
// the session lease. {"joined": false} outside a cluster.
json cluster_json(const snapshot::Payload& p) {
  const snapshot::ClusterState& c = p.cluster;
  const auto flag = [&c](std::uint32_t bit) { return (c.flags & bit) != 0; };
  if (!flag(snapshot::kClusterJoined)) return {{"joined", false}};
  return {{"joined", true},
          {"name", field_text(c.cluster_name)},
          {"node", field_text(c.node_name)},
          {"redis_reachable", flag(snapshot::kClusterRedisReachable)},
          {"redis_last_contact", c.redis_last_contact_wall_s},
          {"nodes_live", c.nodes_live},
          {"control_version", c.control_version},
          {"cut_local", flag(snapshot::kClusterCutLocal)},
          {"local_change_unsynced", flag(snapshot::kClusterLocalChangeUnsynced)},
          {"lease_holder", field_text(c.lease_holder)},
          {"lease_held_here", flag(snapshot::kClusterLeaseHolder)},
          {"lease_fencing", c.lease_fencing},
          {"counts_from_peer", flag(snapshot::kClusterCountsFromPeer)},
          {"counts_stale", flag(snapshot::kClusterCountsStale)},
          {"counts_published_ms", c.counts_published_wall_ms}};
}

}  // namespace

const char* store_kind_name(std::uint32_t kind) noexcept {
  switch (kind) {
    case snapshot::kStoreRedis: return "redis";
    case snapshot::kStoreRedisCluster: return "rediscluster";
    default: return "files";
  }
}

json payload_to_json(const snapshot::Payload& p) {
  const bool cut = (p.flags & snapshot::kFlagCutActive) != 0;
  json out;
  out["helper"] = {{"pid", p.writer_pid}, {"generation", p.writer_generation}, {"sequence", p.snapshot_sequence}};
  out["sessions"] = sessions_json(p);
  out["store"] = store_json(p);
  out["last_scan"] = {{"wall_time", p.last_scan_wall_ns / 1'000'000'000LL}, {"duration_us", p.last_scan_duration_us}};
  out["load"] = {{"1", centi_to_string(p.load_centi[0])},
                 {"5", centi_to_string(p.load_centi[1])},
                 {"15", centi_to_string(p.load_centi[2])}};
  out["pressure_some_avg10"] = pressure_json(p);
  out["memory"] = {{"available_percent", centi_to_string(p.mem_available_centi_pct)},
                   {"swap_used_percent", centi_to_string(p.swap_used_centi_pct)}};
  out["cut"] = {{"active", cut},
                {"reason", cut ? field_text(p.cut_reason) : std::string()},
                {"since", cut ? p.cut_since_wall_s : 0}};
  out["thresholds"] = thresholds_json(p);
  out["state_file_invalid"] = (p.flags & snapshot::kFlagStateInvalid) != 0;
  out["probes"] = probes_json(p);
  out["cluster"] = cluster_json(p);
  return out;
}

}  // namespace coupecircuit
