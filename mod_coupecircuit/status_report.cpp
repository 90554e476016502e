#include "status_report.hpp"

#include <cstring>

#include <nlohmann/json.hpp>

#include "decimal.hpp"
#include "probe_table.hpp"
#include "snapshot.hpp"
#include "snapshot_json.hpp"

namespace coupecircuit::module {
namespace {

using nlohmann::json;

constexpr const char* kClassNames[] = {"empty", "anonymous", "unknown", "authenticated"};
constexpr const char* kPsiNames[] = {"cpu", "memory", "io"};
constexpr const char* kReasonNames[] = {"coupure", "surcharge"};
constexpr Verdict kVerdicts[] = {Verdict::ok, Verdict::surcharge, Verdict::coupure, Verdict::inconnu};

// Prometheus label values: backslash, double quote and newline are escaped.
std::string label(std::string_view value) {
  std::string escaped;
  for (const char c : value) {
    if (c == '\\' || c == '"') {
      escaped += '\\';
      escaped += c;
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  return escaped;
}

void metric(std::string& out, const char* name, const char* type, const char* help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, const std::string& name_and_labels, const std::string& value) {
  out += name_and_labels;
  out += ' ';
  out += value;
  out += '\n';
}

std::string centi(std::uint64_t value) {
  return centi_to_string(value);
}

}  // namespace

// Virtual hosts may share a ServerName (the usual :80 and :443 pair of one
// site): they share the name's hysteresis slot and runtime overrides, and a
// Prometheus series must be unique, so each name is reported once (by the
// first server of httpd's list with that name).
std::vector<const VhostStatus*> vhosts_by_name(const StatusReport& report) {
  std::vector<const VhostStatus*> unique;
  for (const auto& vhost : report.vhosts) {
    bool seen = false;
    for (const VhostStatus* kept : unique) seen = seen || kept->name == vhost.name;
    if (!seen) unique.push_back(&vhost);
  }
  return unique;
}

namespace {

template <std::size_t N>
std::string_view fixed_text(const char (&text)[N]) noexcept {
  return {text, ::strnlen(text, N)};
}

// The dependency probes (only when configured). While their results are
// stale no probe is reported up or down: coupecircuit_probe_up is absent.
void render_probes_prometheus(std::string& out, const snapshot::Payload& p) {
  if (!probe_table::configured(p)) return;
  const bool fresh = probe_table::fresh(p);
  metric(out, "coupecircuit_probes_stale", "gauge",
         "1 when coupecircuit-probes' results are missing or too old: every probe is unknown.");
  sample(out, "coupecircuit_probes_stale", fresh ? "0" : "1");
  if (!fresh) return;
  metric(out, "coupecircuit_probe_up", "gauge",
         "1 when the dependency probe is up, 0 when down (absent while unknown).");
  for (std::uint32_t i = 0; i < probe_table::count(p); ++i) {
    const auto& entry = p.probes[i];
    if (entry.status == snapshot::kProbeUnknown) continue;
    sample(out, "coupecircuit_probe_up{probe=\"" + label(probe_table::text(entry.name)) + "\"}",
           entry.status == snapshot::kProbeUp ? "1" : "0");
  }
  metric(out, "coupecircuit_probe_latency_seconds", "gauge", "Duration of the last check of each dependency probe.");
  for (std::uint32_t i = 0; i < probe_table::count(p); ++i) {
    const auto& entry = p.probes[i];
    if (entry.status == snapshot::kProbeUnknown) continue;
    sample(out, "coupecircuit_probe_latency_seconds{probe=\"" + label(probe_table::text(entry.name)) + "\"}",
           std::to_string(static_cast<double>(entry.latency_us) / 1e6));
  }
  metric(out, "coupecircuit_probe_saturation_ratio", "gauge",
         "Measured saturation of each probe that has one (PostgreSQL: client connections / usable max_connections).");
  for (std::uint32_t i = 0; i < probe_table::count(p); ++i) {
    const auto& entry = p.probes[i];
    if (!probe_table::has_saturation(entry)) continue;
    sample(out, "coupecircuit_probe_saturation_ratio{probe=\"" + label(probe_table::text(entry.name)) + "\"}",
           std::to_string(static_cast<double>(entry.saturation_pct) / 100.0));
  }
}

// The cluster block (only in a cluster): membership, control state and the
// session lease as this node sees them. Counts and names only.
void render_cluster_prometheus(std::string& out, const snapshot::Payload& p, std::int64_t now_wall_ms) {
  const auto& c = p.cluster;
  if ((c.flags & snapshot::kClusterJoined) == 0) return;
  const std::string cluster = label(fixed_text(c.cluster_name));
  const std::string node = label(fixed_text(c.node_name));
  metric(out, "coupecircuit_cluster_info", "gauge",
         "The cluster this node belongs to ([cluster] of coupecircuitd.conf).");
  sample(out, "coupecircuit_cluster_info{cluster=\"" + cluster + "\",node=\"" + node + "\"}", "1");
  metric(out, "coupecircuit_cluster_redis_up", "gauge", "1 when the last exchange with the cluster's Redis succeeded.");
  sample(out, "coupecircuit_cluster_redis_up", (c.flags & snapshot::kClusterRedisReachable) != 0 ? "1" : "0");
  metric(out, "coupecircuit_cluster_nodes", "gauge",
         "Registered nodes whose heartbeat is fresh, as this node last read them.");
  sample(out, "coupecircuit_cluster_nodes", std::to_string(c.nodes_live));
  metric(out, "coupecircuit_cluster_control_version", "gauge",
         "Version of the cluster control state applied on this node.");
  sample(out, "coupecircuit_cluster_control_version", std::to_string(c.control_version));
  const std::string_view holder = fixed_text(c.lease_holder);
  const bool holds = (c.flags & snapshot::kClusterLeaseHolder) != 0;
  metric(out, "coupecircuit_cluster_lease_holder", "gauge",
         "1 for the node holding the session lease, as this node sees it (0 for this node when another holds it).");
  if (!holder.empty()) {
    sample(out, "coupecircuit_cluster_lease_holder{cluster=\"" + cluster + "\",node=\"" + label(holder) + "\"}", "1");
  }
  if (!holds && holder != fixed_text(c.node_name)) {
    sample(out, "coupecircuit_cluster_lease_holder{cluster=\"" + cluster + "\",node=\"" + node + "\"}", "0");
  }
  if (c.lease_fencing == 0 && c.counts_published_wall_ms == 0 && (c.flags & snapshot::kClusterCountsStale) == 0) {
    return;  // sessions in files: each node counts its own, no lease
  }
  metric(out, "coupecircuit_cluster_lease_fencing", "gauge", "Fencing number of the session counts in use.");
  sample(out, "coupecircuit_cluster_lease_fencing", std::to_string(c.lease_fencing));
  metric(out, "coupecircuit_cluster_counts_stale", "gauge",
         "1 when the lease holder's session counts are missing or older than the limit: sessions unknown.");
  sample(out, "coupecircuit_cluster_counts_stale", (c.flags & snapshot::kClusterCountsStale) != 0 ? "1" : "0");
  if (c.counts_published_wall_ms > 0) {
    metric(out, "coupecircuit_cluster_counts_age_seconds", "gauge",
           "Seconds since the lease holder published the session counts in use (Redis's clock against this node's).");
    const std::int64_t age_ms = now_wall_ms > c.counts_published_wall_ms ? now_wall_ms - c.counts_published_wall_ms : 0;
    sample(out, "coupecircuit_cluster_counts_age_seconds", std::to_string(static_cast<double>(age_ms) / 1000.0));
  }
}

}  // namespace

void add_page_details(VhostStatus& vhost, const ServerSettings& settings, bool has_payload,
                      const SharedState& shared) noexcept {
  static const snapshot::Payload kNoPayload{};
  const snapshot::Payload& payload = has_payload ? SnapshotSource::thread_payload() : kNoPayload;
  const VhostLimits limits = vhost_limits(payload, settings);
  vhost.has_sessions_limit = limits.effective.sessions_from != nullptr;
  if (vhost.has_sessions_limit) {
    vhost.sessions_trip = limits.effective.sessions_from->sessions;
    vhost.sessions_release = limits.sessions_release;
  }
  vhost.has_load_limit = limits.effective.load_from != nullptr;
  if (vhost.has_load_limit) {
    vhost.load_trip_centi = limits.effective.load_from->load_centi;
    vhost.load_release_centi = limits.load_release_centi;
  }
  vhost.hold_seconds = settings.hold_ns() / 1'000'000'000ULL;
  vhost.transitions = shared.transitions(settings.verdict_slot);
}

void add_history(StatusReport& report) {
  report.now_wall_s = snapshot::realtime_now_ns() / 1'000'000'000LL;
  auto points = history::read_file(history::path_for(report.snapshot_path));
  if (points) {
    report.history = std::move(*points);
  } else {
    report.history_error = points.error().message;
  }
}

const char* to_string(Health health) noexcept {
  switch (health) {
    case Health::fresh:
      return "fresh";
    case Health::stale:
      return "stale";
    case Health::missing:
      return "missing";
  }
  return "missing";
}

std::string render_status_json(const StatusReport& report) {
  json out;
  out["snapshot"] = {{"path", report.snapshot_path}, {"health", to_string(report.health)}};
  if (report.has_payload) {
    const auto& p = report.payload;
    out["snapshot"]["age_seconds"] = report.age_seconds;
    // The schema shared with `coupecircuitctl status --json` (docs/STATUS_JSON.md).
    out.update(payload_to_json(p));
    out["sessions"]["last_scan_duration_us"] = p.last_scan_duration_us;  // old spelling, kept one release
  }
  json vhosts = json::array();
  for (const auto& vhost : report.vhosts) {
    json entry = {{"name", vhost.name},
                  {"state", to_string(vhost.values.verdict)},
                  {"tripped", vhost.values.tripped},
                  {"trips", vhost.trips}};
    if (const char* text = vhost.values.get(Variable::seuil_sessions)) entry["threshold_sessions"] = text;
    if (const char* text = vhost.values.get(Variable::seuil_load)) entry["threshold_load"] = text;
    vhosts.push_back(entry);
  }
  out["vhosts"] = vhosts;
  out["requests_shed"] = {{"coupure", report.shed[0]}, {"surcharge", report.shed[1]}};
  return out.dump(2) + "\n";
}

std::string render_status_prometheus(const StatusReport& report) {
  std::string out;
  metric(out, "coupecircuit_snapshot_fresh", "gauge",
         "1 when the helper's snapshot is fresh, 0 when stale or missing.");
  sample(out, "coupecircuit_snapshot_fresh", report.health == Health::fresh ? "1" : "0");
  metric(out, "coupecircuit_requests_shed_total", "counter",
         "Requests refused by CoupeCircuitAction since Apache started.");
  for (std::size_t i = 0; i < kShedReasonCount; ++i) {
    sample(out, std::string("coupecircuit_requests_shed_total{reason=\"") + kReasonNames[i] + "\"}",
           std::to_string(report.shed[i]));
  }
  const std::vector<const VhostStatus*> vhosts = vhosts_by_name(report);
  metric(out, "coupecircuit_vhost_state", "gauge", "Verdict of each vhost (1 for its current state).");
  for (const VhostStatus* vhost : vhosts) {
    for (const Verdict verdict : kVerdicts) {
      sample(out,
             "coupecircuit_vhost_state{vhost=\"" + label(vhost->name) + "\",state=\"" +
                 std::string(to_string(verdict)) + "\"}",
             vhost->values.verdict == verdict ? "1" : "0");
    }
  }
  metric(out, "coupecircuit_vhost_trips_total", "counter", "Times each vhost tripped since Apache started.");
  for (const VhostStatus* vhost : vhosts) {
    sample(out, "coupecircuit_vhost_trips_total{vhost=\"" + label(vhost->name) + "\"}", std::to_string(vhost->trips));
  }
  metric(out, "coupecircuit_vhost_threshold", "gauge", "Effective threshold of each vhost.");
  for (const VhostStatus* vhost : vhosts) {
    if (const char* text = vhost->values.get(Variable::seuil_sessions)) {
      sample(out, "coupecircuit_vhost_threshold{vhost=\"" + label(vhost->name) + "\",kind=\"sessions\"}", text);
    }
    if (const char* text = vhost->values.get(Variable::seuil_load)) {
      sample(out, "coupecircuit_vhost_threshold{vhost=\"" + label(vhost->name) + "\",kind=\"load\"}", text);
    }
  }
  if (!report.has_payload) return out;
  const auto& p = report.payload;
  metric(out, "coupecircuit_snapshot_age_seconds", "gauge", "Seconds since the helper's last heartbeat.");
  sample(out, "coupecircuit_snapshot_age_seconds", std::to_string(report.age_seconds));
  metric(out, "coupecircuit_helper_info", "gauge", "The helper writing the snapshot.");
  sample(out, "coupecircuit_helper_info{pid=\"" + std::to_string(p.writer_pid) + "\"}", "1");
  const bool known = snapshot::sessions_known(p);
  metric(out, "coupecircuit_sessions_source_up", "gauge",
         "1 when the helper could read the session store at its last scan, 0 when it could not.");
  sample(out, "coupecircuit_sessions_source_up", known ? "1" : "0");
  if (known) {
    metric(out, "coupecircuit_sessions_active_authenticated", "gauge", "Active authenticated PHP sessions.");
    sample(out, "coupecircuit_sessions_active_authenticated", std::to_string(p.sessions_active));
  }
  metric(out, "coupecircuit_session_files", "gauge", "Session files by class and activity.");
  for (std::size_t i = 0; i < 4; ++i) {
    sample(out, std::string("coupecircuit_session_files{class=\"") + kClassNames[i] + "\",activity=\"active\"}",
           std::to_string(p.count_active[i]));
    sample(out, std::string("coupecircuit_session_files{class=\"") + kClassNames[i] + "\",activity=\"inactive\"}",
           std::to_string(p.count_inactive[i]));
  }
  sample(out, "coupecircuit_session_files{class=\"unread\",activity=\"inactive\"}",
         std::to_string(p.count_inactive_unread));
  metric(out, "coupecircuit_last_scan_duration_seconds", "gauge", "Duration of the helper's last full scan.");
  sample(out, "coupecircuit_last_scan_duration_seconds",
         std::to_string(static_cast<double>(p.last_scan_duration_us) / 1e6));
  metric(out, "coupecircuit_load_average", "gauge", "Load average.");
  const char* periods[] = {"1", "5", "15"};
  for (std::size_t i = 0; i < 3; ++i) {
    sample(out, std::string("coupecircuit_load_average{period=\"") + periods[i] + "\"}", centi(p.load_centi[i]));
  }
  metric(out, "coupecircuit_pressure_available", "gauge", "1 when the kernel reports pressure stall information.");
  const bool psi = (p.flags & snapshot::kFlagPsiAvailable) != 0;
  sample(out, "coupecircuit_pressure_available", psi ? "1" : "0");
  if (psi) {
    metric(out, "coupecircuit_pressure_some_avg10_percent", "gauge", "PSI some avg10.");
    for (std::size_t i = 0; i < 3; ++i) {
      sample(out, std::string("coupecircuit_pressure_some_avg10_percent{resource=\"") + kPsiNames[i] + "\"}",
             centi(p.psi_some_avg10_centi[i]));
    }
  }
  metric(out, "coupecircuit_memory_available_percent", "gauge", "MemAvailable over MemTotal.");
  sample(out, "coupecircuit_memory_available_percent", centi(p.mem_available_centi_pct));
  metric(out, "coupecircuit_swap_used_percent", "gauge", "Swap used over swap total.");
  sample(out, "coupecircuit_swap_used_percent", centi(p.swap_used_centi_pct));
  metric(out, "coupecircuit_cut", "gauge", "1 while the manual cut (COUPURE_CHARGE_SERVEUR) is on.");
  sample(out, "coupecircuit_cut", (p.flags & snapshot::kFlagCutActive) != 0 ? "1" : "0");
  if ((p.flags & snapshot::kFlagCutActive) != 0) {
    metric(out, "coupecircuit_cut_since_timestamp_seconds", "gauge", "When the manual cut went on (Unix time).");
    sample(out, "coupecircuit_cut_since_timestamp_seconds", std::to_string(p.cut_since_wall_s));
  }
  render_cluster_prometheus(out, p, snapshot::realtime_now_ns() / 1'000'000);
  render_probes_prometheus(out, p);
  return out;
}

}  // namespace coupecircuit::module
