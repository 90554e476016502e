#include "cluster_control.hpp"

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "atomic_file.hpp"
#include "read_file.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxDocumentBytes = std::size_t{256} * 1024;
constexpr std::size_t kMaxNameBytes = 63;

Result<json> parse_object(std::string_view text) {
  if (text.size() > kMaxDocumentBytes) return make_error("larger than " + std::to_string(kMaxDocumentBytes) + " bytes");
  try {
    json root = json::parse(text);
    if (!root.is_object()) return make_error("expected a JSON object");
    return root;
  } catch (const json::parse_error& error) {
    return make_error(std::string("invalid JSON: ") + error.what());
  }
}

Result<std::uint64_t> unsigned_of(const json& value, std::string_view key) {
  if (!value.is_number_unsigned()) return make_error(std::string(key) + ": expected an unsigned integer");
  return value.get<std::uint64_t>();
}

Result<std::int64_t> time_of(const json& value, std::string_view key) {
  constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (!value.is_number_unsigned() || value.get<std::uint64_t>() > kMax) {
    return make_error(std::string(key) + ": expected a time (unsigned integer)");
  }
  return value.get<std::int64_t>();
}

// A short printable name (node, user): what goes into logs and terminals.
Result<std::string> name_of(const json& value, std::string_view key) {
  if (!value.is_string()) return make_error(std::string(key) + ": expected a string");
  auto text = value.get<std::string>();
  if (text.size() > kMaxNameBytes) return make_error(std::string(key) + ": longer than 63 bytes");
  for (const char c : text) {
    if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7E) {
      return make_error(std::string(key) + ": only printable ASCII without spaces");
    }
  }
  return text;
}

Result<void> check_format(const json& root, std::string_view expected) {
  const auto format = root.find("format");
  if (format == root.end() || !format->is_string() || format->get<std::string>() != expected) {
    return make_error("\"format\" is not \"" + std::string(expected) + "\"");
  }
  return {};
}

// A JSON object whose "format" is `expected`.
Result<json> parse_document(std::string_view text, std::string_view expected) {
  auto root = parse_object(text);
  if (!root) return root.error();
  if (auto format = check_format(*root, expected); !format) return format.error();
  return root;
}

// "cut" and "thresholds", read by the state file's own parser.
Result<ControlState> control_state_of(const json& root) {
  json state = json::object();
  state["version"] = kStateVersion;
  if (const auto cut = root.find("cut"); cut != root.end()) state["cut"] = *cut;
  if (const auto thresholds = root.find("thresholds"); thresholds != root.end()) state["thresholds"] = *thresholds;
  return parse_state(state.dump());
}

void put_control_state(json& root, const ControlState& state) {
  const json document = json::parse(serialize_state(state));
  root["cut"] = document["cut"];
  root["thresholds"] = document["thresholds"];
}

Result<void> parse_changed_by(const json& value, ClusterControl& control) {
  if (!value.is_object()) return make_error("changed_by: expected an object");
  for (const auto& [key, field] : value.items()) {
    if (key != "node" && key != "user") return make_error("changed_by: unknown key \"" + key + "\"");
    auto name = name_of(field, "changed_by." + key);
    if (!name) return name.error();
    (key == "node" ? control.changed_by_node : control.changed_by_user) = std::move(*name);
  }
  return {};
}

Result<void> parse_control_field(const std::string& key, const json& value, ClusterControl& control) {
  if (key == "version") {
    auto version = unsigned_of(value, key);
    if (!version) return version.error();
    control.version = *version;
  } else if (key == "changed_at_ms") {
    auto at = time_of(value, key);
    if (!at) return at.error();
    control.changed_at_ms = *at;
  } else if (key == "changed_by") {
    return parse_changed_by(value, control);
  } else if (key != "format" && key != "cut" && key != "thresholds") {
    return make_error("unknown key \"" + key + "\"");
  }
  return {};
}

Result<ClusterControl> control_of(const json& root) {
  if (auto format = check_format(root, kControlFormat); !format) return format.error();
  ClusterControl control;
  for (const auto& [key, value] : root.items()) {
    if (auto parsed = parse_control_field(key, value, control); !parsed) return parsed.error();
  }
  auto state = control_state_of(root);
  if (!state) return state.error();
  control.state = std::move(*state);
  return control;
}

json control_to_json(const ClusterControl& control) {
  json root = json::object();
  root["format"] = kControlFormat;
  root["version"] = control.version;
  root["changed_by"] = {{"node", control.changed_by_node}, {"user", control.changed_by_user}};
  root["changed_at_ms"] = control.changed_at_ms;
  put_control_state(root, control.state);
  return root;
}

// Non-ASCII is written as \uXXXX: one line, whatever the reason holds.
std::string one_line(const json& document) { return document.dump(-1, ' ', true, json::error_handler_t::replace); }

Result<void> parse_report_text(const std::string& key, const json& value, NodeReport& report) {
  if (!value.is_string()) return make_error(key + ": expected a string");
  auto text = value.get<std::string>();
  if (text.size() > kMaxNameBytes) return make_error(key + ": longer than 63 bytes");
  if (key == "node") {
    report.node = std::move(text);
  } else if (key == "helper_version") {
    report.helper_version = std::move(text);
  } else if (key == "state") {
    report.state = std::move(text);
  } else {
    report.lease_holder = std::move(text);
  }
  return {};
}

Result<void> parse_report_flag(const std::string& key, const json& value, NodeReport& report) {
  if (!value.is_boolean()) return make_error(key + ": expected true or false");
  const bool flag = value.get<bool>();
  if (key == "sessions_known") report.sessions_known = flag;
  if (key == "cut") report.cut = flag;
  if (key == "cut_local") report.cut_local = flag;
  if (key == "local_unsynced") report.local_unsynced = flag;
  return {};
}

Result<void> parse_report_number(const std::string& key, const json& value, NodeReport& report) {
  auto number = unsigned_of(value, key);
  if (!number) return number.error();
  constexpr auto kMaxTime = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (key == "pid") report.pid = static_cast<std::uint32_t>(std::min<std::uint64_t>(*number, UINT32_MAX));
  if (key == "load1_centi") report.load1_centi = static_cast<std::uint32_t>(std::min<std::uint64_t>(*number, UINT32_MAX));
  if (key == "sessions_active") report.sessions_active = *number;
  if (key == "snapshot_sequence") report.snapshot_sequence = *number;
  if (key == "control_version") report.control_version = *number;
  if (key == "reported_at_ms") report.reported_at_ms = static_cast<std::int64_t>(std::min(*number, kMaxTime));
  return {};
}

bool is_one_of(std::string_view key, std::initializer_list<std::string_view> names) {
  return std::any_of(names.begin(), names.end(), [key](std::string_view name) { return key == name; });
}

}  // namespace

std::string cluster_key_prefix(std::string_view cluster) { return "coupecircuit:{" + std::string(cluster) + "}:"; }
std::string control_key(std::string_view cluster) { return cluster_key_prefix(cluster) + "control"; }
std::string changes_channel(std::string_view cluster) { return cluster_key_prefix(cluster) + "changes"; }
std::string node_key(std::string_view cluster, std::string_view node) {
  return cluster_key_prefix(cluster) + "node:" + std::string(node);
}
std::string nodes_index_key(std::string_view cluster) { return cluster_key_prefix(cluster) + "nodes"; }

Result<ClusterControl> parse_cluster_control(std::string_view json_text) {
  auto root = parse_object(json_text);
  if (!root) return root.error();
  return control_of(*root);
}

std::string serialize_cluster_control(const ClusterControl& control) { return one_line(control_to_json(control)); }

Result<NodeReport> parse_node_report(std::string_view json_text) {
  auto root = parse_document(json_text, kNodeReportFormat);
  if (!root) return root.error();
  NodeReport report;
  for (const auto& [key, value] : root->items()) {
    Result<void> parsed;
    if (is_one_of(key, {"node", "helper_version", "state", "lease_holder"})) {
      parsed = parse_report_text(key, value, report);
    } else if (is_one_of(key, {"sessions_known", "cut", "cut_local", "local_unsynced"})) {
      parsed = parse_report_flag(key, value, report);
    } else if (is_one_of(key, {"pid", "load1_centi", "sessions_active", "snapshot_sequence", "control_version",
                               "reported_at_ms"})) {
      parsed = parse_report_number(key, value, report);
    }
    // Unknown keys are skipped: a newer node may report more.
    if (!parsed) return parsed.error();
  }
  if (report.node.empty()) return make_error("missing \"node\"");
  return report;
}

std::string serialize_node_report(const NodeReport& report) {
  json root = json::object();
  root["format"] = kNodeReportFormat;
  root["node"] = report.node;
  root["helper_version"] = report.helper_version;
  root["pid"] = report.pid;
  root["state"] = report.state;
  root["load1_centi"] = report.load1_centi;
  root["sessions_known"] = report.sessions_known;
  root["sessions_active"] = report.sessions_active;
  root["snapshot_sequence"] = report.snapshot_sequence;
  root["control_version"] = report.control_version;
  root["cut"] = report.cut;
  root["cut_local"] = report.cut_local;
  root["local_unsynced"] = report.local_unsynced;
  root["lease_holder"] = report.lease_holder;
  root["reported_at_ms"] = report.reported_at_ms;
  return one_line(root);
}

namespace {

void overlay(ThresholdOverride& base, const ThresholdOverride& top) {
  if (top.sessions) base.sessions = top.sessions;
  if (top.load_centi) base.load_centi = top.load_centi;
}

}  // namespace

EffectiveControl effective_control(const ControlState& local, const ClusterControl* cluster) {
  EffectiveControl result;
  if (cluster == nullptr) {
    result.state = local;
    return result;
  }
  result.state = cluster->state;
  if (!cluster->state.cut_active && local.cut_active) {
    result.state.cut_active = true;
    result.state.cut_reason = local.cut_reason;
    result.state.cut_since = local.cut_since;
    result.cut_local = true;
  }
  overlay(result.state.global, local.global);
  for (const auto& [name, value] : local.vhosts) overlay(result.state.vhosts[name], value);
  return result;
}

std::string mirror_path_for(const std::string& state_path) { return state_path + ".cluster"; }

Result<ClusterMirror> parse_cluster_mirror(std::string_view json_text) {
  auto root = parse_document(json_text, kMirrorFormat);
  if (!root) return root.error();
  ClusterMirror mirror;
  for (const auto& [key, value] : root->items()) {
    if (key == "cluster") {
      auto name = name_of(value, key);
      if (!name) return name.error();
      mirror.cluster = std::move(*name);
    } else if (key == "control") {
      if (!value.is_object()) return make_error("control: expected an object");
      auto control = control_of(value);
      if (!control) return make_error("control: " + control.error().message);
      mirror.control = std::move(*control);
    } else if (key == "local_unsynced_since") {
      auto since = time_of(value, key);
      if (!since) return since.error();
      mirror.local_unsynced_since_wall_s = *since;
    } else if (key != "format") {
      return make_error("unknown key \"" + key + "\"");
    }
  }
  return mirror;
}

std::string serialize_cluster_mirror(const ClusterMirror& mirror) {
  json root = json::object();
  root["format"] = kMirrorFormat;
  root["cluster"] = mirror.cluster;
  root["control"] = control_to_json(mirror.control);
  root["local_unsynced_since"] = mirror.local_unsynced_since_wall_s;
  return root.dump(2, ' ', true, json::error_handler_t::replace) + "\n";
}

Result<std::optional<ClusterMirror>> load_cluster_mirror(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    const int saved = errno;
    if (saved == ENOENT) return std::optional<ClusterMirror>{};
    return make_error("cannot open cluster mirror " + path + ": " + std::strerror(saved), saved);
  }
  const auto text = read_regular_file(fd.get(), "cluster mirror", path, kMaxDocumentBytes);
  if (!text) return text.error();
  auto mirror = parse_cluster_mirror(*text);
  if (!mirror) return make_error("cluster mirror " + path + ": " + mirror.error().message);
  return std::optional<ClusterMirror>(std::move(*mirror));
}

Result<void> save_cluster_mirror(const std::string& path, const ClusterMirror& mirror) {
  return replace_private_file(path, serialize_cluster_mirror(mirror), 0644);
}

}  // namespace coupecircuit
