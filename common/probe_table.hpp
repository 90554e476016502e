// Reading the snapshot's probe table (filled by coupecircuitd from the probe
// results file): the names and texts every consumer shows the same way
// (coupecircuitctl status, the status page, Prometheus, the health answer).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "snapshot_layout.hpp"

namespace coupecircuit::probe_table {

// "up", "down" or "unknown" (anything else read from a damaged file too).
[[nodiscard]] const char* status_name(std::uint32_t status) noexcept;

// The table is in use ([probes] configured) / its results are fresh.
[[nodiscard]] constexpr bool configured(const snapshot::Payload& p) noexcept {
  return (p.probe_flags & snapshot::kProbesConfigured) != 0;
}
[[nodiscard]] constexpr bool fresh(const snapshot::Payload& p) noexcept {
  return configured(p) && (p.probe_flags & snapshot::kProbesStale) == 0;
}
// The entries in use, bounded even when a damaged file says more.
[[nodiscard]] constexpr std::uint32_t count(const snapshot::Payload& p) noexcept {
  return p.probe_count < snapshot::kMaxProbes ? p.probe_count : static_cast<std::uint32_t>(snapshot::kMaxProbes);
}
// A measured saturation, while the probe is up and the results fresh.
[[nodiscard]] constexpr bool has_saturation(const snapshot::ProbeEntry& entry) noexcept {
  return (entry.flags & snapshot::kProbeHasSaturation) != 0 && entry.status == snapshot::kProbeUp;
}
// A text field read within its array, even without its NUL.
template <std::size_t N>
[[nodiscard]] std::string_view text(const char (&field)[N]) noexcept {
  std::size_t length = 0;
  while (length < N && field[length] != '\0') ++length;
  return {field, length};
}

// The lines of `coupecircuitctl status` for the probes ("" when not
// configured), names and errors escaped for a terminal.
[[nodiscard]] std::string status_lines(const snapshot::Payload& p, std::int64_t now_wall_s);

}  // namespace coupecircuit::probe_table
