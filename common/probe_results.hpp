// The probe results file: what coupecircuit-probes (unprivileged, network)
// hands to coupecircuitd (root, no network). One small JSON file, replaced
// atomically by the writer, read by the helper as untrusted input:
//
//   {"format":"coupecircuit-probes/1","written_wall_ms":1700000000123,
//    "pid":4242,"stale_after_ms":15000,
//    "probes":[{"name":"pg","type":"postgresql","critical":true,
//               "status":"up","since_wall_s":1700000000,"latency_us":1830,
//               "saturation_pct":57,"error":""}]}
//
// Rules (the parser enforces every one; the renderer only writes what the
// parser accepts):
// - at most kMaxResultsBytes (64 KiB), UTF-8 JSON, no duplicate keys, no
//   unknown keys (a new field is a new format string);
// - at most 16 probes, names [A-Za-z0-9_-]{1,31}, unique;
// - type http|tcp|redis|postgresql, status up|down|unknown;
// - saturation_pct only when measured, 0..kMaxSaturationPct;
// - error: printable ASCII, at most 79 bytes (render_probe_results trims).
// The reader treats the results as stale (every probe unknown, never up)
// when the file is missing, invalid, or older than stale_after_ms clamped to
// 1 s .. 10 min.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.hpp"
#include "snapshot_layout.hpp"

namespace coupecircuit::probes {

inline constexpr std::string_view kResultsFormat = "coupecircuit-probes/1";
inline constexpr const char* kDefaultResultsPath = "/run/coupecircuit/probes/probes.json";
inline constexpr std::size_t kMaxResultsBytes = std::size_t{64} * 1024;
inline constexpr std::size_t kMaxProbes = snapshot::kMaxProbes;
inline constexpr std::size_t kMaxNameLength = snapshot::kProbeNameCapacity - 1;   // 31
inline constexpr std::size_t kMaxErrorBytes = snapshot::kProbeErrorCapacity - 1;  // 79
inline constexpr std::uint32_t kMaxSaturationPct = 1000;  // superusers may use reserved slots: > 100 is real
inline constexpr std::int64_t kMinStaleAfterMs = 1'000;
inline constexpr std::int64_t kMaxStaleAfterMs = 600'000;
inline constexpr std::string_view kSaturationPrefix = "SATURATION_";

enum class ProbeType { http, tcp, redis, postgresql };
enum class ProbeStatus { unknown, up, down };

struct ProbeResult {
  std::string name;
  ProbeType type = ProbeType::tcp;
  bool critical = false;
  ProbeStatus status = ProbeStatus::unknown;
  std::int64_t since_wall_s = 0;  // when status last changed
  std::uint32_t latency_us = 0;   // of the last check
  std::optional<std::uint32_t> saturation_pct;
  std::string error;  // last error, empty when none
  bool operator==(const ProbeResult&) const = default;
};

struct ProbeResults {
  std::int64_t written_wall_ms = 0;
  std::int64_t pid = 0;
  std::int64_t stale_after_ms = 15'000;
  std::vector<ProbeResult> probes;
  bool operator==(const ProbeResults&) const = default;
};

[[nodiscard]] std::string_view to_string(ProbeType type) noexcept;
[[nodiscard]] std::string_view to_string(ProbeStatus status) noexcept;
[[nodiscard]] std::optional<ProbeType> parse_probe_type(std::string_view text) noexcept;

// [A-Za-z0-9_-]{1,31}; the error says which rule failed (escaped for a terminal).
[[nodiscard]] Result<void> validate_probe_name(std::string_view name);
// "SATURATION_" + the name upper-cased, '-' -> '_' (e.g. main-db -> SATURATION_MAIN_DB).
[[nodiscard]] std::string saturation_variable_name(std::string_view name);
// The text as the file may carry it: control characters and non-ASCII bytes
// become spaces or '?', runs of white space collapse, trimmed, cut to 79 bytes.
[[nodiscard]] std::string trim_probe_error(std::string_view text);
[[nodiscard]] std::int64_t clamp_stale_after_ms(std::int64_t value) noexcept;

// Compact JSON, trimming each error; names and counts are the caller's
// (probe_config validates them) but are never rendered invalid JSON.
[[nodiscard]] std::string render_probe_results(const ProbeResults& results);
// Strict: any rule above broken is an error naming the field.
[[nodiscard]] Result<ProbeResults> parse_probe_results(std::string_view text);

// Opens with O_NOFOLLOW, requires a regular file of at most 64 KiB that is
// not world-writable, then parses. A missing file is an Error with code
// ENOENT (the writer has not run yet: stale, nothing to log each time).
[[nodiscard]] Result<ProbeResults> read_probe_results_file(const std::string& path);

// Whether results written at written_wall_ms are too old at now_wall_ms
// (stale_after_ms clamped). A time in the future by more than the same
// limit is stale as well: a clock jump must not freeze "up" forever.
[[nodiscard]] bool results_are_stale(const ProbeResults& results, std::int64_t now_wall_ms) noexcept;

}  // namespace coupecircuit::probes
