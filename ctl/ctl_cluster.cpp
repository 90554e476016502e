#include "ctl_cluster.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "cluster_control.hpp"
#include "cluster_link.hpp"
#include "cluster_redis.hpp"
#include "decimal.hpp"
#include "snapshot.hpp"

namespace coupecircuit::ctl {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kMaxWriteAttempts = 20;
constexpr auto kPollInterval = std::chrono::milliseconds(10);

// Who changes the state, for changed_by.user: the sudo caller when there is
// one, else the login of the real user id. Printable ASCII only.
std::string operator_name() {
  std::string name;
  if (const char* sudo = std::getenv("SUDO_USER"); sudo != nullptr) name = sudo;
  if (name.empty()) {
    if (const passwd* entry = ::getpwuid(::getuid()); entry != nullptr && entry->pw_name != nullptr) name = entry->pw_name;
  }
  if (name.empty()) name = "uid" + std::to_string(::getuid());
  std::string clean;
  for (const char c : name.substr(0, 63)) clean.push_back(c > 0x20 && c < 0x7F ? c : '_');
  return clean;
}

std::int64_t wall_ms() { return snapshot::realtime_now_ns() / 1'000'000; }

// What to say when Redis cannot be used: nothing was changed.
int unreachable(const ClusterConfig& cluster, const std::string& why, const std::string& what) {
  std::fprintf(stderr,
               "coupecircuitctl: cluster %s: %s (%s: [cluster] redis)\n%s: nothing was changed. To change this "
               "node only: the same command with --local.\n",
               cluster.name.c_str(), why.c_str(), cluster.where.c_str(), what.c_str());
  return kExitAttention;
}

Result<redis::SlotConnection> connection_for(ClusterConfig cluster) {
  if (auto password = read_cluster_password(cluster); !password) return password.error();
  return redis::SlotConnection(cluster_server_settings(cluster), control_key(cluster.name));
}

std::uint64_t highest_reported(const cluster_redis::Registry& registry) {
  std::uint64_t highest = 0;
  for (const auto& node : registry.nodes) {
    if (node.report) highest = std::max(highest, node.report->control_version);
  }
  return highest;
}

// Reads, applies, compare-and-sets; again when another writer came first.
// The new version is above both Redis's and every node's (a Redis restarted
// empty must not make the nodes ignore it).
Result<ClusterControl> write_change(redis::SlotConnection& connection, const ClusterConfig& cluster,
                                    const ControlChange& change) {
  for (int attempt = 0; attempt < kMaxWriteAttempts; ++attempt) {
    auto stored = cluster_redis::read_control(connection, cluster.name);
    if (!stored) return stored.error();
    auto registry = cluster_redis::read_registry(connection, cluster.name);
    if (!registry) return registry.error();
    const std::uint64_t expected = *stored ? (*stored)->version : 0;
    ClusterControl next = *stored ? **stored : ClusterControl{};
    change(next.state);
    // What the helpers would reject is never written (e.g. too many vhosts).
    if (auto valid = parse_state(serialize_state(next.state)); !valid) {
      return make_error("refused: " + valid.error().message);
    }
    next.version = std::max(expected, highest_reported(*registry)) + 1;
    next.changed_by_node = cluster.node;
    next.changed_by_user = operator_name();
    next.changed_at_ms = wall_ms();
    std::uint64_t current = 0;
    auto written = cluster_redis::write_control(connection, cluster.name, expected, next, &current);
    if (!written) return written.error();
    if (*written == cluster_redis::WriteOutcome::written) return next;
  }
  return make_error("the control state kept changing under this write (" + std::to_string(kMaxWriteAttempts) +
                    " attempts): try again");
}

struct Confirmation {
  std::vector<std::string> applied;
  std::vector<std::string> pending;  // "node (version N)"
};

Result<Confirmation> confirmation(redis::SlotConnection& connection, const std::string& cluster, std::uint64_t version) {
  auto registry = cluster_redis::read_registry(connection, cluster);
  if (!registry) return registry.error();
  Confirmation result;
  for (const auto& node : registry->nodes) {
    if (!node.report) continue;  // expired: not a live node
    if (node.report->control_version >= version) {
      result.applied.push_back(node.node);
    } else {
      result.pending.push_back(node.node + " (version " + std::to_string(node.report->control_version) + ")");
    }
  }
  return result;
}

std::string joined(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

int wait_for_nodes(redis::SlotConnection& connection, const ClusterConfig& cluster, const ClusterControl& written,
                   const std::string& what, double wait_s) {
  const auto deadline = Clock::now() + std::chrono::duration<double>(wait_s);
  for (;;) {
    auto state = confirmation(connection, cluster.name, written.version);
    if (!state) {
      std::printf("%s: written (control version %llu) but the confirmations cannot be read: %s\n", what.c_str(),
                  static_cast<unsigned long long>(written.version), state.error().message.c_str());
      return kExitAttention;
    }
    if (state->pending.empty()) {
      if (state->applied.empty()) {
        std::printf("%s: written (control version %llu); no live node is registered: each helper applies it when it "
                    "connects\n",
                    what.c_str(), static_cast<unsigned long long>(written.version));
      } else {
        std::printf("%s: applied by %zu node(s) (%s), control version %llu\n", what.c_str(), state->applied.size(),
                    joined(state->applied).c_str(), static_cast<unsigned long long>(written.version));
      }
      return kExitOk;
    }
    if (Clock::now() >= deadline) {
      std::printf("%s: written (control version %llu), but not confirmed within %.1f s by: %s\n", what.c_str(),
                  static_cast<unsigned long long>(written.version), wait_s, joined(state->pending).c_str());
      return kExitAttention;
    }
    std::this_thread::sleep_for(kPollInterval);
  }
}

// ---------------------------------------------------------------- status --cluster

struct NodeRow {
  std::string node;
  std::string status;  // live, missing, invalid
  double last_seen_s = 0;
  const NodeReport* report = nullptr;
  bool in_sync = false;
};

std::vector<NodeRow> rows_of(const cluster_redis::Registry& registry, std::uint64_t version) {
  std::vector<NodeRow> rows;
  for (const auto& node : registry.nodes) {
    NodeRow row;
    row.node = node.node;
    row.last_seen_s = static_cast<double>(std::max<std::int64_t>(registry.now_ms - node.last_seen_ms, 0)) / 1000.0;
    row.report = node.report ? &*node.report : nullptr;
    row.status = node.report ? "live" : (node.invalid.empty() ? "missing" : "invalid");
    row.in_sync = node.report && node.report->control_version >= version;
    rows.push_back(std::move(row));
  }
  return rows;
}

json row_json(const NodeRow& row) {
  json out = {{"node", row.node}, {"status", row.status}, {"last_seen_seconds", row.last_seen_s},
              {"in_sync", row.in_sync}};
  if (row.report == nullptr) return out;
  const NodeReport& r = *row.report;
  out["state"] = r.state;
  out["load1"] = centi_to_string(r.load1_centi);
  out["sessions_active"] = r.sessions_known ? json(r.sessions_active) : json(nullptr);
  out["lease_holder"] = r.lease_holder;
  out["control_version"] = r.control_version;
  out["cut"] = r.cut;
  out["cut_local"] = r.cut_local;
  out["local_change_unsynced"] = r.local_unsynced;
  out["helper_version"] = r.helper_version;
  out["pid"] = r.pid;
  out["snapshot_sequence"] = r.snapshot_sequence;
  return out;
}

std::string notes_of(const NodeRow& row) {
  const NodeReport* r = row.report;
  if (r == nullptr) return row.status == "missing" ? "MISSING (registry entry expired)" : "INVALID report";
  std::string notes;
  if (!row.in_sync) notes += "BEHIND ";
  if (r->cut_local) notes += "local-cut ";
  if (r->local_unsynced) notes += "LOCAL-CHANGE-DURING-OUTAGE ";
  return notes;
}

void print_row(const NodeRow& row) {
  const NodeReport* r = row.report;
  char seen[32];
  std::snprintf(seen, sizeof seen, "%.1fs ago", row.last_seen_s);
  const std::string state = r != nullptr ? r->state : "-";
  const std::string load = r != nullptr ? centi_to_string(r->load1_centi) : "-";
  const std::string sessions = r != nullptr && r->sessions_known ? std::to_string(r->sessions_active) : "-";
  const std::string lease = r != nullptr && !r->lease_holder.empty() ? r->lease_holder : "-";
  const std::string version = r != nullptr ? std::to_string(r->control_version) : "-";
  std::printf("%-24s %-8s %-16s %7s %9s %9s %-16s %8s %s\n", row.node.c_str(), row.status.c_str(), state.c_str(),
              load.c_str(), sessions.c_str(), seen, lease.c_str(), version.c_str(), notes_of(row).c_str());
}

void print_rows(const std::vector<NodeRow>& rows) {
  std::printf("%-24s %-8s %-16s %7s %9s %9s %-16s %8s %s\n", "NODE", "STATUS", "STATE", "LOAD", "SESSIONS", "SEEN",
              "LEASE", "CONTROL", "NOTES");
  for (const auto& row : rows) print_row(row);
}

}  // namespace

int cluster_modify(const ClusterConfig& cluster, const ControlChange& change, const std::string& what, double wait_s) {
  auto connection = connection_for(cluster);
  if (!connection) {
    std::fprintf(stderr, "coupecircuitctl: %s; %s: nothing was changed\n", connection.error().message.c_str(), what.c_str());
    return kExitAttention;
  }
  auto written = write_change(*connection, cluster, change);
  if (!written) {
    if (written.error().message.rfind("refused: ", 0) == 0) {
      std::fprintf(stderr, "coupecircuitctl: %s; nothing was changed.\n", written.error().message.c_str());
      return kExitAttention;
    }
    return unreachable(cluster, written.error().message, what);
  }
  return wait_for_nodes(*connection, cluster, *written, what, wait_s);
}

int cluster_status(const ClusterConfig& cluster, bool as_json) {
  auto connection = connection_for(cluster);
  Result<std::optional<ClusterControl>> stored = connection ? cluster_redis::read_control(*connection, cluster.name)
                                                            : Result<std::optional<ClusterControl>>(connection.error());
  Result<cluster_redis::Registry> registry =
      stored ? cluster_redis::read_registry(*connection, cluster.name) : Result<cluster_redis::Registry>(stored.error());
  if (!registry) {
    if (as_json) {
      std::cout << json({{"cluster", cluster.name}, {"redis_reachable", false}, {"error", registry.error().message}})
                       .dump(2, ' ', true, json::error_handler_t::replace)
                << "\n";
    } else {
      std::fprintf(stderr, "coupecircuitctl: cluster %s: %s (%s: [cluster] redis)\n", cluster.name.c_str(),
                   registry.error().message.c_str(), cluster.where.c_str());
    }
    return kExitUnknown;
  }
  const std::uint64_t version = *stored ? (*stored)->version : 0;
  const std::vector<NodeRow> rows = rows_of(*registry, version);
  const bool all_well =
      std::all_of(rows.begin(), rows.end(), [](const NodeRow& row) { return row.report != nullptr && row.in_sync; });
  if (as_json) {
    json nodes = json::array();
    for (const auto& row : rows) nodes.push_back(row_json(row));
    json out = {{"cluster", cluster.name}, {"redis_reachable", true}, {"control_version", version},
                {"cut", *stored && (*stored)->state.cut_active}, {"nodes", nodes}};
    if (*stored) {
      out["changed_by"] = {{"node", (*stored)->changed_by_node}, {"user", (*stored)->changed_by_user}};
      out["changed_at_ms"] = (*stored)->changed_at_ms;
    }
    std::cout << out.dump(2, ' ', true, json::error_handler_t::replace) << "\n";
  } else {
    std::printf("cluster %s: control version %llu, cut %s%s\n", cluster.name.c_str(),
                static_cast<unsigned long long>(version), *stored && (*stored)->state.cut_active ? "ON" : "off",
                *stored ? (" (changed by " + (*stored)->changed_by_user + "@" + (*stored)->changed_by_node + ")").c_str()
                        : "");
    print_rows(rows);
  }
  return all_well ? kExitOk : kExitAttention;
}

std::string cluster_status_text(const snapshot::Payload& payload) {
  const snapshot::ClusterState& c = payload.cluster;
  if ((c.flags & snapshot::kClusterJoined) == 0) return {};
  const auto text = [](const auto& field) { return std::string(field, ::strnlen(field, sizeof field)); };
  std::string out = "cluster:    " + text(c.cluster_name) + ", node " + text(c.node_name) + ", control version " +
                    std::to_string(c.control_version) + ", " + std::to_string(c.nodes_live) + " node(s) live, Redis " +
                    ((c.flags & snapshot::kClusterRedisReachable) != 0 ? "reachable" : "UNREACHABLE") + "\n";
  if ((c.flags & snapshot::kClusterCutLocal) != 0) out += "            the cut in force is local to this node (--local)\n";
  if ((c.flags & snapshot::kClusterLocalChangeUnsynced) != 0) {
    out += "WARNING:    a --local change made while Redis was unreachable is in force on this node only\n";
  }
  return out;
}

}  // namespace coupecircuit::ctl
