#include "state_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "atomic_file.hpp"
#include "decimal.hpp"
#include "read_file.hpp"
#include "snapshot.hpp"
#include "thresholds.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxStateBytes = 1U << 20;

Result<ThresholdOverride> parse_override(const json& node, const std::string& where) {
  if (!node.is_object()) return make_error(where + ": expected an object");
  ThresholdOverride result;
  for (const auto& [key, value] : node.items()) {
    if (key == "sessions") {
      if (!value.is_number_unsigned()) return make_error(where + ".sessions: expected a positive integer");
      if (auto valid = check_threshold_value(ThresholdKind::sessions, value.get<std::uint64_t>()); !valid) {
        return make_error(where + ".sessions: " + valid.error().message);
      }
      result.sessions = value.get<std::uint64_t>();
    } else if (key == "load") {
      if (!value.is_string()) return make_error(where + ".load: expected a string such as \"4.50\"");
      auto centi = parse_threshold_value(ThresholdKind::load, value.get<std::string>());
      if (!centi) return make_error(where + ".load: " + centi.error().message);
      result.load_centi = *centi;
    } else {
      return make_error(where + ": unknown key \"" + key + "\"");
    }
  }
  return result;
}

json override_to_json(const ThresholdOverride& value) {
  json node = json::object();
  if (value.sessions) node["sessions"] = *value.sessions;
  if (value.load_centi) node["load"] = centi_to_string(*value.load_centi);
  return node;
}

void fill_threshold_set(const ThresholdOverride& source, snapshot::ThresholdSet& target) noexcept {
  target = snapshot::ThresholdSet{};
  if (source.sessions) {
    target.has_sessions = 1;
    target.sessions = *source.sessions;
    render_unsigned(target.sessions_text, sizeof target.sessions_text, *source.sessions);
  }
  if (source.load_centi) {
    target.has_load = 1;
    target.load_centi = *source.load_centi;
    render_centi(target.load_text, sizeof target.load_text, *source.load_centi);
  }
}

Error errno_error(const std::string& what, const std::string& path) {
  const int saved = errno;
  return make_error(what + " " + path + ": " + std::strerror(saved), saved);
}

// How a UTF-8 sequence starting with `lead` (not ASCII) goes on: its length
// (0: not a lead byte) and the bounds of its second byte, narrowed to refuse
// overlong forms, surrogates and code points above U+10FFFF.
struct Utf8Lead {
  std::size_t length = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
};

Utf8Lead utf8_lead(unsigned char lead) noexcept {
  if (lead >= 0xC2 && lead <= 0xDF) return {2, 0x80, 0xBF};
  if (lead == 0xE0) return {3, 0xA0, 0xBF};  // overlong
  if (lead == 0xED) return {3, 0x80, 0x9F};  // surrogates
  if (lead >= 0xE1 && lead <= 0xEF) return {3, 0x80, 0xBF};
  if (lead == 0xF0) return {4, 0x90, 0xBF};  // overlong
  if (lead == 0xF4) return {4, 0x80, 0x8F};  // above U+10FFFF
  if (lead >= 0xF1 && lead <= 0xF3) return {4, 0x80, 0xBF};
  return {};
}

// Whether the sequence at text[i] with this lead is complete and well formed.
bool is_valid_sequence(std::string_view text, std::size_t i, const Utf8Lead& lead) noexcept {
  if (lead.length == 0 || text.size() - i < lead.length) return false;
  const auto second = static_cast<unsigned char>(text[i + 1]);
  if (second < lead.low || second > lead.high) return false;
  for (std::size_t k = 2; k < lead.length; ++k) {
    const auto next = static_cast<unsigned char>(text[i + k]);
    if (next < 0x80 || next > 0xBF) return false;
  }
  return true;
}

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
// above U+10FFFF. The same rules as the JSON parser and serializer.
bool is_valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x80) {
      ++i;
      continue;
    }
    const Utf8Lead lead = utf8_lead(byte);
    if (!is_valid_sequence(text, i, lead)) return false;
    i += lead.length;
  }
  return true;
}

}  // namespace

namespace {

// The code point of the UTF-8 sequence at text[i] (valid UTF-8) and its length.
char32_t decode_at(std::string_view text, std::size_t i, std::size_t& length) noexcept {
  const auto lead = static_cast<unsigned char>(text[i]);
  if (lead < 0x80) {
    length = 1;
    return lead;
  }
  length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
  char32_t value = lead & (0x3FU >> (length - 1));
  for (std::size_t k = 1; k < length && i + k < text.size(); ++k) {
    value = (value << 6U) | (static_cast<unsigned char>(text[i + k]) & 0x3FU);
  }
  return value;
}

}  // namespace

bool is_terminal_unsafe(char32_t c) noexcept {
  return c < 0x20 || (c >= 0x7F && c <= 0x9F) ||       // C0, DEL, C1 (U+009B is CSI)
         c == 0x061C || c == 0x200E || c == 0x200F ||  // ALM, LRM, RLM
         (c >= 0x202A && c <= 0x202E) ||               // LRE RLE PDF LRO RLO
         (c >= 0x2066 && c <= 0x2069);                 // LRI RLI FSI PDI
}

std::size_t find_terminal_unsafe(std::string_view text) noexcept {
  for (std::size_t i = 0; i < text.size();) {
    std::size_t length = 1;
    const char32_t c = decode_at(text, i, length);
    if (is_terminal_unsafe(c)) return i;
    i += length;
  }
  return std::string_view::npos;
}

std::string escape_for_terminal(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length = 1;
    const bool valid = lead < 0x80 || is_valid_utf8(text.substr(i, lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2));
    const char32_t c = valid ? decode_at(text, i, length) : lead;
    if (!valid || is_terminal_unsafe(c)) {
      char code[16];
      std::snprintf(code, sizeof code, valid ? "\\u{%04X}" : "\\x%02X", static_cast<unsigned>(c));
      out += code;
    } else {
      out.append(text.substr(i, length));
    }
    i += length;
  }
  return out;
}

Result<void> validate_vhost_name(std::string_view name) {
  if (name.empty()) return make_error("vhost name is empty");
  if (name.size() >= snapshot::kVhostNameCapacity) {
    return make_error("vhost name \"" + std::string(name) + "\" is longer than " +
                      std::to_string(snapshot::kVhostNameCapacity - 1) + " characters");
  }
  for (const char c : name) {
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                         c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
    if (!allowed)
      return make_error("vhost name \"" + std::string(name) + "\" has a character outside [A-Za-z0-9.-_:[]]");
  }
  return {};
}

std::string normalize_vhost_name(std::string_view name) {
  std::string lower(name);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

Result<void> validate_cut_reason(std::string_view reason) {
  if (reason.size() >= snapshot::kCutReasonCapacity) {
    return make_error("cut reason is longer than " + std::to_string(snapshot::kCutReasonCapacity - 1) + " bytes");
  }
  // The state file is JSON: a reason that is not UTF-8 could not be written
  // (the serializer throws) nor read back.
  if (!is_valid_utf8(reason)) return make_error("cut reason is not valid UTF-8");
  // The reason is printed on operators' terminals and status pages: no
  // control character (C0, DEL, C1) nor bidirectional formatting character
  // that could hide or reorder what is shown.
  if (const auto bad = find_terminal_unsafe(reason); bad != std::string_view::npos) {
    return make_error("cut reason contains a control character or a bidirectional formatting character at byte " +
                      std::to_string(bad));
  }
  return {};
}

namespace {

Result<void> parse_cut_field(const std::string& key, const json& value, ControlState& state) {
  if (key == "active") {
    if (!value.is_boolean()) return make_error("cut.active: expected true or false");
    state.cut_active = value.get<bool>();
    return {};
  }
  if (key == "reason") {
    if (!value.is_string()) return make_error("cut.reason: expected a string");
    state.cut_reason = value.get<std::string>();
    if (auto valid = validate_cut_reason(state.cut_reason); !valid)
      return make_error("cut.reason: " + valid.error().message);
    return {};
  }
  if (key == "since") {
    constexpr auto kMaxSince = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    const bool fits =
        value.is_number_integer() && (!value.is_number_unsigned() || value.get<std::uint64_t>() <= kMaxSince);
    if (!fits) return make_error("cut.since: expected unix seconds");
    state.cut_since = value.get<std::int64_t>();
    return {};
  }
  return make_error("cut: unknown key \"" + key + "\"");
}

Result<void> parse_cut(const json& value, ControlState& state) {
  if (!value.is_object()) return make_error("cut: expected an object");
  for (const auto& [key, field] : value.items()) {
    if (auto parsed = parse_cut_field(key, field, state); !parsed) return parsed;
  }
  return {};
}

Result<void> parse_vhost_overrides(const json& node, ControlState& state) {
  if (!node.is_object()) return make_error("thresholds.vhosts: expected an object");
  if (node.size() > snapshot::kMaxVhostOverrides) {
    return make_error("thresholds.vhosts: more than " + std::to_string(snapshot::kMaxVhostOverrides) + " vhosts");
  }
  for (const auto& [name, vhost_node] : node.items()) {
    if (auto valid = validate_vhost_name(name); !valid)
      return make_error("thresholds.vhosts: " + valid.error().message);
    auto parsed = parse_override(vhost_node, "thresholds.vhosts." + name);
    if (!parsed) return parsed.error();
    if (!parsed->empty()) state.vhosts[normalize_vhost_name(name)] = *parsed;
  }
  return {};
}

Result<void> parse_thresholds(const json& value, ControlState& state) {
  if (!value.is_object()) return make_error("thresholds: expected an object");
  for (const auto& [scope, node] : value.items()) {
    if (scope == "global") {
      auto parsed = parse_override(node, "thresholds.global");
      if (!parsed) return parsed.error();
      state.global = *parsed;
    } else if (scope == "vhosts") {
      if (auto parsed = parse_vhost_overrides(node, state); !parsed) return parsed;
    } else {
      return make_error("thresholds: unknown key \"" + scope + "\"");
    }
  }
  return {};
}

}  // namespace

Result<ControlState> parse_state(std::string_view json_text) {
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& error) {
    return make_error(std::string("invalid JSON: ") + error.what());
  }
  if (!root.is_object()) return make_error("expected a JSON object at the top level");
  ControlState state;
  bool saw_version = false;
  for (const auto& [key, value] : root.items()) {
    Result<void> parsed;
    if (key == "version") {
      // Compared as a 64-bit value: a narrower conversion would let e.g.
      // 4294967297 pass for 1.
      if (!value.is_number_integer() || value.get<std::int64_t>() != kStateVersion) {
        return make_error("unsupported state version (expected " + std::to_string(kStateVersion) + ")");
      }
      saw_version = true;
    } else if (key == "cut") {
      parsed = parse_cut(value, state);
    } else if (key == "thresholds") {
      parsed = parse_thresholds(value, state);
    } else {
      return make_error("unknown key \"" + key + "\"");
    }
    if (!parsed) return parsed.error();
  }
  if (!saw_version) return make_error("missing \"version\"");
  return state;
}

std::string serialize_state(const ControlState& state) {
  json root = json::object();
  root["version"] = kStateVersion;
  root["cut"] = {{"active", state.cut_active}, {"reason", state.cut_reason}, {"since", state.cut_since}};
  json vhosts = json::object();
  for (const auto& [name, value] : state.vhosts) {
    if (!value.empty()) vhosts[name] = override_to_json(value);
  }
  root["thresholds"] = {{"global", override_to_json(state.global)}, {"vhosts", vhosts}};
  return root.dump(2) + "\n";
}

Result<ControlState> load_state_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return ControlState{};
    return errno_error("cannot open state file", path);
  }
  const auto text = read_regular_file(fd.get(), "state file", path, kMaxStateBytes);
  if (!text) return text.error();
  auto state = parse_state(*text);
  if (!state) return make_error("state file " + path + ": " + state.error().message);
  return state;
}

Result<void> save_state_file(const std::string& path, const ControlState& state) {
  return replace_private_file(path, serialize_state(state), 0644);
}

void apply_state_to_payload(const ControlState& state, snapshot::Payload& payload) noexcept {
  if (state.cut_active) {
    payload.flags |= snapshot::kFlagCutActive;
  } else {
    payload.flags &= ~static_cast<std::uint32_t>(snapshot::kFlagCutActive);
  }
  payload.cut_since_wall_s = state.cut_active ? state.cut_since : 0;
  snapshot::copy_text(payload.cut_reason, state.cut_active ? std::string_view(state.cut_reason) : std::string_view{});
  fill_threshold_set(state.global, payload.global_override);
  std::size_t index = 0;
  for (const auto& [name, value] : state.vhosts) {
    if (index == snapshot::kMaxVhostOverrides) break;
    auto& entry = payload.vhost_overrides[index++];
    entry = snapshot::VhostOverride{};
    snapshot::copy_text(entry.name, name);
    entry.name_hash = snapshot::vhost_name_hash(name.data(), name.size());
    fill_threshold_set(value, entry.thresholds);
  }
  for (std::size_t rest = index; rest < snapshot::kMaxVhostOverrides; ++rest) {
    payload.vhost_overrides[rest] = snapshot::VhostOverride{};
  }
  payload.vhost_override_count = static_cast<std::uint32_t>(index);
}

}  // namespace coupecircuit
