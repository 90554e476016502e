// The coupecircuit-status handler's pages: HTML for people, JSON, and the
// Prometheus text exposition format. Only counts and settings appear: no
// session id or session content ever reaches the helper's snapshot.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "request_values.hpp"
#include "shared_state.hpp"
#include "snapshot_layout.hpp"

namespace coupecircuit::module {

struct VhostStatus {
  std::string name;
  RequestValues values;
  std::uint64_t trips = 0;
};

struct StatusReport {
  Health health = Health::missing;
  bool has_payload = false;  // payload is meaningful (fresh, or stale but readable)
  snapshot::Payload payload{};
  std::uint64_t age_seconds = 0;
  std::vector<VhostStatus> vhosts;
  std::uint64_t shed[kShedReasonCount] = {};
  std::string snapshot_path;
};

[[nodiscard]] std::string render_status_json(const StatusReport& report);
[[nodiscard]] std::string render_status_prometheus(const StatusReport& report);
[[nodiscard]] std::string render_status_html(const StatusReport& report);
[[nodiscard]] const char* to_string(Health health) noexcept;

}  // namespace coupecircuit::module
