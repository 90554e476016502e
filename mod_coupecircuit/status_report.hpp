// The coupecircuit-status handler's pages: HTML for people, JSON, and the
// Prometheus text exposition format. Only counts and settings appear: no
// session id or session content ever reaches the helper's snapshot.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "history.hpp"
#include "request_values.hpp"
#include "shared_state.hpp"
#include "snapshot_layout.hpp"

namespace coupecircuit::module {

struct VhostStatus {
  std::string name;
  RequestValues values;
  std::uint64_t trips = 0;
  // For the HTML page: the effective TRIP and RELEASE points (absent
  // thresholds have has_* false), the hold, the last transitions.
  bool has_sessions_limit = false;
  bool has_load_limit = false;
  std::uint64_t sessions_trip = 0;
  std::uint64_t sessions_release = 0;
  std::uint64_t load_trip_centi = 0;
  std::uint64_t load_release_centi = 0;
  std::uint64_t hold_seconds = 0;
  SlotTransitions transitions;
};

struct StatusReport {
  Health health = Health::missing;
  bool has_payload = false;  // payload is meaningful (fresh, or stale but readable)
  snapshot::Payload payload{};
  std::uint64_t age_seconds = 0;
  std::vector<VhostStatus> vhosts;
  std::uint64_t shed[kShedReasonCount] = {};
  std::string snapshot_path;
  // For the HTML page.
  std::int64_t now_wall_s = 0;
  std::vector<history::Point> history;  // oldest first
  std::string history_error;            // why there is no history (empty: none)
  unsigned refresh_seconds = 0;         // 0: no meta refresh
};

// ?refresh=N of the HTML page, bounded to [kMinRefresh, kMaxRefresh]
// seconds; 0 for any other query.
inline constexpr unsigned kMinRefreshSeconds = 5;
inline constexpr unsigned kMaxRefreshSeconds = 3600;
[[nodiscard]] unsigned parse_refresh(std::string_view query) noexcept;

// The HTML page's details of a vhost: its effective TRIP and RELEASE points
// (from the calling thread's payload copy when has_payload, else from its
// directives), its hold and its last transitions.
void add_page_details(VhostStatus& vhost, const ServerSettings& settings, bool has_payload,
                      const SharedState& shared) noexcept;
// The wall clock, and the history file next to the snapshot (read per page
// view: requests never touch it).
void add_history(StatusReport& report);

// The vhosts of the report, each ServerName once (the first with that name):
// vhosts sharing a name share their state.
[[nodiscard]] std::vector<const VhostStatus*> vhosts_by_name(const StatusReport& report);

[[nodiscard]] std::string render_status_json(const StatusReport& report);
[[nodiscard]] std::string render_status_prometheus(const StatusReport& report);
[[nodiscard]] std::string render_status_html(const StatusReport& report);
[[nodiscard]] const char* to_string(Health health) noexcept;

}  // namespace coupecircuit::module
