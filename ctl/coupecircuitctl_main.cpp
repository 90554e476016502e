// coupecircuitctl: the operator's view of CoupeCircuit. Reads the snapshot,
// and changes the manual cut and runtime thresholds through the state file.
//
// Exit status: 0 ok; 1 cut, over a global threshold, or an operation failed;
// 2 bad usage (nothing is written); 3 status unknown (status): the snapshot
// is stale or missing, or the helper cannot read the session store.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "atomic_file.hpp"
#include "cluster_control.hpp"
#include "ctl_cluster.hpp"
#include "daemon_config.hpp"
#include "decimal.hpp"
#include "snapshot.hpp"
#include "probe_table.hpp"
#include "snapshot_json.hpp"
#include "state_file.hpp"
#include "thresholds.hpp"
#include "unique_fd.hpp"

namespace {

using namespace coupecircuit;
using nlohmann::json;

constexpr int kExitOk = 0;
constexpr int kExitAttention = 1;
constexpr int kExitUsage = 2;
constexpr int kExitUnknown = 3;

constexpr const char* kClassNames[] = {"empty", "anonymous", "unknown", "authenticated"};

struct GlobalOptions {
  std::string config_path = kDefaultConfigPath;  // the helper's: [cluster], [snapshot] path, [state] path
  std::string snapshot_path = snapshot::kDefaultPath;
  std::string state_path = kDefaultStatePath;
  double max_age_s = 10.0;
  double wait_s = 2.0;
  ClusterConfig cluster;  // from the helper's configuration
};

std::string wall_time_text(std::int64_t unix_seconds) {
  if (unix_seconds <= 0) return "-";
  const std::time_t value = unix_seconds;
  std::tm parts{};
  ::localtime_r(&value, &parts);
  char buffer[64];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%d %H:%M:%S %z", &parts);
  return buffer;
}

std::string percent_text(std::uint32_t centi_percent) { return centi_to_string(centi_percent) + " %"; }

// A text field of the snapshot, read within its array even when a damaged
// file left it without its NUL.
template <std::size_t N>
std::string field_text(const char (&field)[N]) {
  return std::string(field, ::strnlen(field, N));
}

// JSON output never aborts on bytes that are not UTF-8 (a --snapshot path
// typed by the operator, a damaged snapshot): they are replaced by U+FFFD.
// Non-ASCII is written as \uXXXX: a control or bidirectional character
// from a damaged or hostile file never reaches the terminal raw.
std::string json_text(const json& document) { return document.dump(2, ' ', true, json::error_handler_t::replace); }

std::string threshold_set_text(const snapshot::ThresholdSet& set) {
  std::string text;
  if (set.has_sessions != 0) text += "sessions " + field_text(set.sessions_text);
  if (set.has_load != 0) text += std::string(text.empty() ? "" : ", ") + "load " + field_text(set.load_text);
  return text.empty() ? "none" : text;
}

// The global runtime thresholds, judged as the module judges a vhost that
// has no directive of its own (Apache's per-vhost thresholds are not known here).
bool over_global_threshold(const snapshot::Payload& payload) {
  const snapshot::ThresholdSet no_directive{};
  const EffectiveThresholds global = resolve_thresholds(payload, nullptr, no_directive);
  return check_thresholds(payload, global, 0, 0).over;
}

void print_store(const snapshot::Payload& p) {
  if (p.store_kind == snapshot::kStoreFiles) return;
  const bool unavailable = (p.flags & snapshot::kFlagSessionsUnavailable) != 0;
  std::printf("store:      %s, masters %u/%u, %llu keys, pass %llu us, notifications %s\n", store_kind_name(p.store_kind),
              p.store_masters_reached, p.store_masters_total, static_cast<unsigned long long>(p.keys_seen),
              static_cast<unsigned long long>(p.last_scan_duration_us),
              (p.store_flags & snapshot::kStoreNotifications) != 0 ? "on" : "off");
  if (unavailable) {
    const std::int64_t age_s =
        p.last_scan_wall_ns > 0 ? (snapshot::realtime_now_ns() - p.last_scan_wall_ns) / 1'000'000'000LL : -1;
    std::printf("WARNING:    sessions unavailable since %s (last good count %s); SESSIONS_ACTIVES not exported\n",
                wall_time_text(p.sessions_unavailable_since_wall_s).c_str(),
                age_s >= 0 ? (std::to_string(age_s) + " s ago").c_str() : "never");
  }
}

// What `status` judged of one snapshot copy.
struct StatusView {
  const snapshot::Payload& payload;
  double age_s = 0;
  bool stale = false;
  bool sessions_unknown = false;
  bool cut = false;
  bool over = false;

  [[nodiscard]] const char* name() const {
    if (stale) return "stale";
    if (sessions_unknown) return "sessions_unknown";
    if (cut) return "cut";
    return over ? "over_threshold" : "ok";
  }
  [[nodiscard]] int exit_status() const {
    if (stale || sessions_unknown) return kExitUnknown;
    return cut || over ? kExitAttention : kExitOk;
  }
};

int report_missing(const GlobalOptions& options, bool as_json, snapshot::ReadError error) {
  if (as_json) {
    const json out = {{"status", "missing"}, {"snapshot", options.snapshot_path},
                      {"error", std::string(snapshot::to_string(error))}};
    std::cout << json_text(out) << "\n";
  } else {
    std::cout << "snapshot " << options.snapshot_path << ": " << snapshot::to_string(error)
              << " (is coupecircuitd running?)\n";
  }
  return kExitUnknown;
}

// The shared schema (payload_to_json), plus what only the command line knows.
void print_status_json(const GlobalOptions& options, const StatusView& view) {
  json out = payload_to_json(view.payload);
  out["status"] = view.name();
  out["snapshot"] = options.snapshot_path;
  out["age_seconds"] = view.age_s;
  // The flat spellings of releases before the shared schema, kept for one
  // release: helper.pid, helper.generation, helper.sequence, pressure_some_avg10.
  out["helper_pid"] = view.payload.writer_pid;
  out["writer_generation"] = view.payload.writer_generation;
  out["snapshot_sequence"] = view.payload.snapshot_sequence;
  out["psi_some_avg10"] = out["pressure_some_avg10"];
  std::cout << json_text(out) << "\n";
}

void print_sessions_text(const StatusView& view) {
  const auto& p = view.payload;
  if (view.sessions_unknown) {
    std::printf("sessions:   UNKNOWN: coupecircuitd cannot read the session store (see its log); "
                "the sessions threshold is not judged\n");
  } else {
    std::printf("sessions:   %llu active authenticated (active within %u min)\n",
                static_cast<unsigned long long>(p.sessions_active), p.active_minutes);
  }
  std::printf("            files %llu:", static_cast<unsigned long long>(p.files_seen));
  for (std::size_t i = 0; i < 4; ++i) {
    std::printf(" %s %llu/%llu", kClassNames[i], static_cast<unsigned long long>(p.count_active[i]),
                static_cast<unsigned long long>(p.count_inactive[i]));
  }
  std::printf(" unread -/%u (active/inactive)\n", p.count_inactive_unread);
  std::printf("last scan:  %s, %llu us%s\n", wall_time_text(p.last_scan_wall_ns / 1'000'000'000LL).c_str(),
              static_cast<unsigned long long>(p.last_scan_duration_us),
              (p.flags & snapshot::kFlagScanFailed) != 0 ? " (FAILED: session directory unreadable)" : "");
  print_store(p);
}

void print_load_text(const snapshot::Payload& p) {
  std::printf("load:       %s %s %s\n", centi_to_string(p.load_centi[0]).c_str(), centi_to_string(p.load_centi[1]).c_str(),
              centi_to_string(p.load_centi[2]).c_str());
  if ((p.flags & snapshot::kFlagPsiAvailable) != 0) {
    std::printf("pressure:   some avg10 cpu %s, memory %s, io %s\n", centi_to_string(p.psi_some_avg10_centi[0]).c_str(),
                centi_to_string(p.psi_some_avg10_centi[1]).c_str(), centi_to_string(p.psi_some_avg10_centi[2]).c_str());
  } else {
    std::printf("pressure:   not available on this kernel\n");
  }
  std::printf("memory:     %s available, swap %s used\n", percent_text(p.mem_available_centi_pct).c_str(),
              percent_text(p.swap_used_centi_pct).c_str());
}

// Texts that come from the state file are escaped: a damaged or hostile
// snapshot cannot move the cursor or reorder the line.
void print_control_text(const StatusView& view) {
  const auto& p = view.payload;
  if (view.cut) {
    std::printf("cut:        ON since %s%s%s\n", wall_time_text(p.cut_since_wall_s).c_str(),
                p.cut_reason[0] != '\0' ? ": " : "", escape_for_terminal(field_text(p.cut_reason)).c_str());
  } else {
    std::printf("cut:        off\n");
  }
  std::printf("thresholds: global %s\n", threshold_set_text(p.global_override).c_str());
  for (std::uint32_t i = 0; i < p.vhost_override_count && i < snapshot::kMaxVhostOverrides; ++i) {
    std::printf("            vhost %s: %s\n", escape_for_terminal(field_text(p.vhost_overrides[i].name)).c_str(),
                threshold_set_text(p.vhost_overrides[i].thresholds).c_str());
  }
  if ((p.flags & snapshot::kFlagStateInvalid) != 0) {
    std::printf("WARNING:    the state file is invalid; coupecircuitd keeps the last good state (see its log)\n");
  }
}

void print_status_text(const GlobalOptions& options, const StatusView& view) {
  std::fputs(ctl::cluster_status_text(view.payload).c_str(), stdout);
  std::printf("status:     %s\n", view.name());
  std::printf("helper:     pid %u, snapshot %s, age %.1f s%s\n", view.payload.writer_pid,
              escape_for_terminal(options.snapshot_path).c_str(), view.age_s,
              view.stale ? " (STALE: is coupecircuitd running?)" : "");
  print_sessions_text(view);
  print_load_text(view.payload);
  print_control_text(view);
  std::fputs(probe_table::status_lines(view.payload, snapshot::realtime_now_ns() / 1'000'000'000LL).c_str(), stdout);
}

int command_status(const GlobalOptions& options, bool as_json) {
  snapshot::ReadOptions read_options;
  read_options.max_age_ns = static_cast<std::uint64_t>(options.max_age_s * 1e9);
  bool stale = false;
  auto copy = snapshot::read_snapshot_allow_stale(options.snapshot_path.c_str(), read_options, &stale);
  if (!copy) return report_missing(options, as_json, copy.error());
  const auto& p = copy->payload;
  StatusView view{p};
  view.age_s = static_cast<double>(copy->age_ns) / 1e9;
  view.stale = stale;
  view.sessions_unknown = !snapshot::sessions_known(p);
  view.cut = (p.flags & snapshot::kFlagCutActive) != 0;
  view.over = over_global_threshold(p);
  if (as_json) {
    print_status_json(options, view);
  } else {
    print_status_text(options, view);
  }
  return view.exit_status();
}

// Serialises concurrent coupecircuitctl invocations (read-modify-write).
class StateLock {
 public:
  explicit StateLock(const std::string& state_path) {
    (void)ensure_directory(parent_directory(state_path), 0755);  // a failure shows as the lock's
    fd_.reset(::open((state_path + ".lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (fd_) ::flock(fd_.get(), LOCK_EX);
  }
  [[nodiscard]] bool held() const { return fd_.valid(); }

 private:
  UniqueFd fd_;
};

// The state in force once the helper applied `local`: in a cluster, under
// the cluster state it mirrors (the local layer on top).
ControlState expected_state(const GlobalOptions& options, const ControlState& local) {
  if (!options.cluster.enabled()) return local;
  auto mirror = load_cluster_mirror(mirror_path_for(options.state_path));
  if (!mirror || !*mirror || (*mirror)->cluster != options.cluster.name) return local;
  return effective_control(local, &(*mirror)->control).state;
}

bool snapshot_reflects(const snapshot::Payload& seen, const ControlState& state) {
  snapshot::Payload expected{};
  apply_state_to_payload(state, expected);
  const auto cut_flag = static_cast<std::uint32_t>(snapshot::kFlagCutActive);
  return (seen.flags & cut_flag) == (expected.flags & cut_flag) &&
         std::memcmp(seen.cut_reason, expected.cut_reason, sizeof seen.cut_reason) == 0 &&
         std::memcmp(&seen.global_override, &expected.global_override, sizeof seen.global_override) == 0 &&
         seen.vhost_override_count == expected.vhost_override_count &&
         std::memcmp(seen.vhost_overrides, expected.vhost_overrides, sizeof seen.vhost_overrides) == 0;
}

// Saves, then waits (bounded) until coupecircuitd has published the change.
template <typename Change>
int modify_state(const GlobalOptions& options, Change change, const std::string& what) {
  StateLock lock(options.state_path);
  if (!lock.held()) {
    std::fprintf(stderr, "coupecircuitctl: cannot lock %s.lock: %s\n", options.state_path.c_str(), std::strerror(errno));
    return kExitAttention;
  }
  auto state = load_state_file(options.state_path);
  if (!state) {
    std::fprintf(stderr, "coupecircuitctl: %s\nFix or remove the file; nothing was changed.\n",
                 state.error().message.c_str());
    return kExitAttention;
  }
  change(*state);
  // What the helper would reject is never written (e.g. too many vhosts).
  if (auto valid = parse_state(serialize_state(*state)); !valid) {
    std::fprintf(stderr, "coupecircuitctl: refused: %s; nothing was changed.\n", valid.error().message.c_str());
    return kExitAttention;
  }
  if (auto saved = save_state_file(options.state_path, *state); !saved) {
    std::fprintf(stderr, "coupecircuitctl: %s\n", saved.error().message.c_str());
    return kExitAttention;
  }

  snapshot::ReadOptions read_options;
  read_options.max_age_ns = static_cast<std::uint64_t>(options.max_age_s * 1e9);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(options.wait_s);
  for (;;) {
    auto copy = snapshot::read_snapshot(options.snapshot_path.c_str(), read_options);
    if (!copy) {
      std::printf("%s: saved to %s; coupecircuitd is not running (snapshot %s): it applies when the helper starts\n",
                  what.c_str(), options.state_path.c_str(), std::string(snapshot::to_string(copy.error())).c_str());
      return kExitOk;
    }
    if (snapshot_reflects(copy->payload, expected_state(options, *state))) {
      std::printf("%s: applied (snapshot sequence %llu, helper pid %u)\n", what.c_str(),
                  static_cast<unsigned long long>(copy->payload.snapshot_sequence), copy->payload.writer_pid);
      return kExitOk;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      std::printf("%s: saved to %s, but coupecircuitd has not published it within %.1f s (see its log)\n", what.c_str(),
                  options.state_path.c_str(), options.wait_s);
      return kExitAttention;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

int command_threshold_list(const GlobalOptions& options, bool as_json) {
  auto state = load_state_file(options.state_path);
  if (!state) {
    std::fprintf(stderr, "coupecircuitctl: %s\n", state.error().message.c_str());
    return kExitAttention;
  }
  auto describe = [](const ThresholdOverride& value) {
    std::string text;
    if (value.sessions) text += "sessions " + std::to_string(*value.sessions);
    if (value.load_centi) text += std::string(text.empty() ? "" : ", ") + "load " + centi_to_string(*value.load_centi);
    return text.empty() ? std::string("none") : text;
  };
  if (as_json) {
    std::cout << json::parse(serialize_state(*state))["thresholds"].dump(2) << "\n";
    return kExitOk;
  }
  std::printf("global: %s\n", describe(state->global).c_str());
  for (const auto& [name, value] : state->vhosts) std::printf("vhost %s: %s\n", name.c_str(), describe(value).c_str());
  return kExitOk;
}

// The command line: global options, the subcommands and their arguments.
struct CommandLine {
  GlobalOptions options;
  bool as_json = false;
  std::string reason, kind, value, vhost;
  bool local = false;            // --local: this node's state file, not the cluster's
  bool cluster_status = false;   // status --cluster
  CLI::App* status = nullptr;
  CLI::App* cut_on = nullptr;
  CLI::App* cut_off = nullptr;
  CLI::App* set = nullptr;
  CLI::App* unset = nullptr;
  CLI::App* list = nullptr;
};

std::string check_message(const Result<void>& valid) { return valid ? std::string() : valid.error().message; }

void define_global_options(CLI::App& app, GlobalOptions& options) {
  app.set_version_flag("--version", COUPECIRCUIT_VERSION);
  app.require_subcommand(1);
  app.add_option("--config", options.config_path,
                 "coupecircuitd's configuration: its [cluster], snapshot and state paths (defaults below)")
      ->capture_default_str();
  app.add_option("--snapshot", options.snapshot_path, "Snapshot file (default: [snapshot] path)")->capture_default_str();
  app.add_option("--state", options.state_path, "Control state file (default: [state] path)")->capture_default_str();
  app.add_option("--max-age", options.max_age_s, "Seconds after which the snapshot is stale")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--wait", options.wait_s,
                 "Seconds to wait for coupecircuitd (in a cluster: every live node) to apply a change")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 60.0));
}

void define_cut_commands(CLI::App& app, CommandLine& line) {
  auto* cut = app.add_subcommand("cut", "Manual cut (COUPURE_CHARGE_SERVEUR)");
  cut->require_subcommand(1);
  line.cut_on = cut->add_subcommand("on", "Turn the manual cut on");
  line.cut_on->add_option("--reason", line.reason, "Short reason shown by status")
      ->check([](const std::string& text) { return check_message(validate_cut_reason(text)); });
  line.cut_off = cut->add_subcommand("off", "Turn the manual cut off");
  for (auto* command : {line.cut_on, line.cut_off}) {
    command->add_flag("--local", line.local, "In a cluster: this node only (its state file), not every node");
  }
}

void define_threshold_commands(CLI::App& app, CommandLine& line) {
  auto* threshold = app.add_subcommand("threshold", "Runtime threshold overrides");
  threshold->require_subcommand(1);
  const auto kind_check = CLI::IsMember({"sessions", "load"});
  const auto vhost_check = [](const std::string& name) { return check_message(validate_vhost_name(name)); };
  line.set = threshold->add_subcommand("set", "Set a threshold override: sessions|load VALUE [--vhost NAME]");
  line.set->add_option("kind", line.kind, "sessions or load")->required()->check(kind_check);
  line.set->add_option("value", line.value, "Integer for sessions, e.g. 4.50 for load")->required();
  line.set->add_option("--vhost", line.vhost, "Only this vhost (its ServerName)")->check(vhost_check);
  line.unset = threshold->add_subcommand("unset", "Remove a threshold override: sessions|load [--vhost NAME]");
  line.unset->add_option("kind", line.kind, "sessions or load")->required()->check(kind_check);
  line.unset->add_option("--vhost", line.vhost, "Only this vhost (its ServerName)")->check(vhost_check);
  for (auto* command : {line.set, line.unset}) {
    command->add_flag("--local", line.local, "In a cluster: this node only (its state file), not every node");
  }
  line.list = threshold->add_subcommand("list", "List the threshold overrides of the state file");
  line.list->add_flag("--json", line.as_json, "Machine-readable output");
}

void define_commands(CLI::App& app, CommandLine& line) {
  define_global_options(app, line.options);
  line.status = app.add_subcommand(
      "status", "Show load, sessions, cut and thresholds (exit 0 ok, 1 cut or over, 3 stale or sessions unknown)");
  line.status->add_flag("--json", line.as_json, "Machine-readable output");
  line.status->add_flag("--cluster", line.cluster_status,
                        "Every node of the cluster: state, load, sessions, last seen, lease holder, control version "
                        "(exit 0 all in sync, 1 a node missing or behind, 3 Redis unreachable)");
  define_cut_commands(app, line);
  define_threshold_commands(app, line);
}

std::string scope_of(const CommandLine& line) {
  return line.vhost.empty() ? "global" : "vhost " + normalize_vhost_name(line.vhost);
}

// In a cluster (unless --local): the cluster's state in Redis, applied by
// every node; else this node's state file.
int change_control(const CommandLine& line, const ctl::ControlChange& change, const std::string& what) {
  if (line.options.cluster.enabled() && !line.local) {
    return ctl::cluster_modify(line.options.cluster, change, what, line.options.wait_s);
  }
  return modify_state(line.options, change, line.options.cluster.enabled() ? what + " (this node only)" : what);
}

int command_cut(const CommandLine& line, bool on) {
  if (!on) {
    return change_control(line, [](ControlState& state) {
      state.cut_active = false;
      state.cut_reason.clear();
      state.cut_since = 0;
    }, "cut off");
  }
  return change_control(line, [&](ControlState& state) {
    state.cut_active = true;
    state.cut_reason = line.reason;
    state.cut_since = static_cast<std::int64_t>(std::time(nullptr));
  }, "cut on");
}

int command_threshold_set(const CommandLine& line) {
  const ThresholdKind kind = *parse_threshold_kind(line.kind);
  const std::uint64_t number = *parse_threshold_value(kind, line.value);  // checked while parsing
  const std::string shown = kind == ThresholdKind::sessions ? std::to_string(number) : centi_to_string(number);
  return change_control(line, [&](ControlState& state) {
    ThresholdOverride& target = line.vhost.empty() ? state.global : state.vhosts[normalize_vhost_name(line.vhost)];
    (kind == ThresholdKind::sessions ? target.sessions : target.load_centi) = number;
  }, "threshold " + line.kind + " " + shown + " (" + scope_of(line) + ")");
}

int command_threshold_unset(const CommandLine& line) {
  const bool sessions = line.kind == "sessions";
  return change_control(line, [&](ControlState& state) {
    if (line.vhost.empty()) {
      (sessions ? state.global.sessions : state.global.load_centi).reset();
      return;
    }
    auto it = state.vhosts.find(normalize_vhost_name(line.vhost));
    if (it == state.vhosts.end()) return;
    (sessions ? it->second.sessions : it->second.load_centi).reset();
    if (it->second.empty()) state.vhosts.erase(it);
  }, "threshold " + line.kind + " unset (" + scope_of(line) + ")");
}

int run_command(const CommandLine& line) {
  if (line.status->parsed() && line.cluster_status) {
    if (!line.options.cluster.enabled()) {
      std::fprintf(stderr, "coupecircuitctl: status --cluster: %s has no [cluster] section: this node is not in a "
                           "cluster (give the helper's configuration with --config)\n",
                   line.options.config_path.c_str());
      return kExitUsage;
    }
    return ctl::cluster_status(line.options.cluster, line.as_json);
  }
  if (line.status->parsed()) return command_status(line.options, line.as_json);
  if (line.cut_on->parsed()) return command_cut(line, true);
  if (line.cut_off->parsed()) return command_cut(line, false);
  if (line.list->parsed()) return command_threshold_list(line.options, line.as_json);
  if (line.set->parsed()) return command_threshold_set(line);
  if (line.unset->parsed()) return command_threshold_unset(line);
  return kExitUsage;
}

// Reads the helper's configuration: [cluster], and the snapshot and state
// paths not given on the command line. A missing default file means a
// node on its own; an invalid one is an error naming the line (exit 2).
bool apply_helper_config(const CLI::App& app, GlobalOptions& options) {
  const bool given = app.get_option("--config")->count() > 0;
  auto config = load_daemon_config(options.config_path, given);
  if (!config && !given && config.error().code == EACCES) return true;  // not root: a status without it
  if (!config) {
    std::fprintf(stderr, "coupecircuitctl: %s\n", config.error().message.c_str());
    return false;
  }
  if (app.get_option("--snapshot")->count() == 0) options.snapshot_path = config->snapshot_path;
  if (app.get_option("--state")->count() == 0) options.state_path = config->state_path;
  options.cluster = config->cluster;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"coupecircuitctl: status, manual cut and runtime thresholds of CoupeCircuit", "coupecircuitctl"};
  CommandLine line;
  define_commands(app, line);
  try {
    app.parse(argc, argv);
    if (line.set->parsed()) {  // the one threshold rule (common/thresholds.hpp)
      auto parsed = parse_threshold_value(*parse_threshold_kind(line.kind), line.value);
      if (!parsed) throw CLI::ValidationError("value", parsed.error().message);
    }
  } catch (const CLI::ParseError& error) {
    const int status_code = app.exit(error);
    if (status_code != 0) std::cerr << "\n" << app.help();
    return status_code == 0 ? kExitOk : kExitUsage;
  }
  if (!apply_helper_config(app, line.options)) return kExitUsage;
  return run_command(line);
}
