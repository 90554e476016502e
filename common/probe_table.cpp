#include "probe_table.hpp"

#include <cstdio>

#include "state_file.hpp"

namespace coupecircuit::probe_table {

const char* status_name(std::uint32_t status) noexcept {
  switch (status) {
    case snapshot::kProbeUp:
      return "up";
    case snapshot::kProbeDown:
      return "down";
    default:
      return "unknown";
  }
}

std::string status_lines(const snapshot::Payload& p, std::int64_t now_wall_s) {
  if (!configured(p)) return {};
  std::string out = "probes:     ";
  if (!fresh(p)) {
    out += "STALE: no fresh results from coupecircuit-probes (is it running?); every probe unknown\n";
  } else {
    const std::string_view down = text(p.probes_down_text);
    out += down.empty() ? std::string("all up or unknown") : "down: " + escape_for_terminal(down);
    if ((p.probe_flags & snapshot::kProbesCriticalDown) != 0) out += " (a critical probe is down: health DRAIN)";
    out += "\n";
  }
  for (std::uint32_t i = 0; i < count(p); ++i) {
    const auto& entry = p.probes[i];
    char line[96];
    (void)std::snprintf(line, sizeof line, "%-7s %8.1f ms", status_name(entry.status),
                        static_cast<double>(entry.latency_us) / 1000.0);
    out += "            " + escape_for_terminal(text(entry.name)) + ": " + line;
    if (has_saturation(entry)) out += ", saturation " + std::to_string(entry.saturation_pct) + " %";
    if ((entry.flags & snapshot::kProbeCritical) != 0) out += ", critical";
    if (entry.since_wall_s > 0 && now_wall_s >= entry.since_wall_s) {
      out += ", since " + std::to_string(now_wall_s - entry.since_wall_s) + " s";
    }
    if (entry.last_error[0] != '\0') out += ", error: " + escape_for_terminal(text(entry.last_error));
    out += "\n";
  }
  return out;
}

}  // namespace coupecircuit::probe_table
