// The control state: manual cut and runtime threshold overrides. Written by
// coupecircuitctl (atomically: temp file, fsync, rename, fsync of the
// directory), read by coupecircuitd, which republishes it in the snapshot.
// Default path /var/lib/coupecircuit/state. JSON:
//   {"version":1,
//    "cut":{"active":true,"reason":"DB maintenance","since":1700000000},
//    "thresholds":{"global":{"sessions":500,"load":"8.00"},
//                  "vhosts":{"www.example.org":{"sessions":200}}}}
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "result.hpp"
#include "snapshot_layout.hpp"

namespace coupecircuit {

inline constexpr const char* kDefaultStatePath = "/var/lib/coupecircuit/state";
inline constexpr int kStateVersion = 1;

struct ThresholdOverride {
  std::optional<std::uint64_t> sessions;
  std::optional<std::uint64_t> load_centi;
  [[nodiscard]] bool empty() const noexcept { return !sessions && !load_centi; }
  bool operator==(const ThresholdOverride&) const = default;
};

struct ControlState {
  bool cut_active = false;
  std::string cut_reason;
  std::int64_t cut_since = 0;  // unix seconds
  ThresholdOverride global;
  std::map<std::string, ThresholdOverride> vhosts;
  bool operator==(const ControlState&) const = default;
};

// Checks a vhost name as typed by an operator (ServerName syntax). Names are
// compared case-insensitively: the state and the snapshot keep them lowercase.
[[nodiscard]] Result<void> validate_vhost_name(std::string_view name);
[[nodiscard]] std::string normalize_vhost_name(std::string_view name);
// At most 127 bytes of UTF-8 without terminal-unsafe characters.
[[nodiscard]] Result<void> validate_cut_reason(std::string_view reason);

// C0 and C1 controls, DEL and the bidirectional formatting characters
// (U+061C, U+200E/F, U+202A-202E, U+2066-2069): what could hide, rewrite or
// reorder text on an operator's terminal.
[[nodiscard]] bool is_terminal_unsafe(char32_t code_point) noexcept;
// Offset of the first such character in UTF-8 text, or npos.
[[nodiscard]] std::size_t find_terminal_unsafe(std::string_view text) noexcept;
// The text with those characters (and bytes that are not UTF-8) written as
// \u{XXXX} or \xNN: safe to print whatever a damaged file held.
[[nodiscard]] std::string escape_for_terminal(std::string_view text);

[[nodiscard]] Result<ControlState> parse_state(std::string_view json_text);
[[nodiscard]] std::string serialize_state(const ControlState& state);

// A missing file is the default state; an unreadable or invalid one an error
// naming the file (and the JSON position when it is a syntax error).
[[nodiscard]] Result<ControlState> load_state_file(const std::string& path);
[[nodiscard]] Result<void> save_state_file(const std::string& path, const ControlState& state);

// Fills the cut and override fields of a snapshot payload.
void apply_state_to_payload(const ControlState& state, snapshot::Payload& payload) noexcept;

}  // namespace coupecircuit
