// HAProxy agent-check: coupecircuitd optionally listens on a TCP port and
// answers one line per connection, then closes it.
//   drain          the manual cut is on ([agent] on_cut = drain, the default),
//                  or a global threshold is reached (sessions or load)
//   maint          the manual cut is on, with [agent] on_cut = maint
//   up ready N%    otherwise; N falls as load nears the trip point:
//                  r = max(sessions / TRIP_sessions, load / TRIP_load)
//                  N = 100 while r <= 0.5, then 100 * (1 - r) / 0.5, at least 1
// The thresholds are the global runtime overrides (coupecircuitctl threshold
// set ...), else [agent] sessions / load in coupecircuitd.conf (the same
// precedence as the module's, resolve_thresholds).
// When the session store cannot be read (snapshot::sessions_known false) the
// sessions ratio is left out and N is at most 50: the node is not drained (a
// blind scanner is no overload) but it does not claim to be idle either, and
// HAProxy's stats page shows the reduced weight.
// Why drain on a cut by default: HAProxy's "maint" also moves the persistent
// (logged-in) clients away, whose PHP sessions live on this node; "drain"
// only stops new ones, like the health check's DRAIN.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "result.hpp"
#include "snapshot_layout.hpp"
#include "unique_fd.hpp"

namespace coupecircuit {

inline constexpr std::uint64_t kWeightWhenSessionsUnknown = 50;  // percent

struct AgentSettings {
  std::uint16_t port = 0;  // 0: off
  std::string bind = "127.0.0.1";
  std::optional<std::uint64_t> sessions_trip;
  std::optional<std::uint64_t> load_trip_centi;
  bool maint_on_cut = false;  // [agent] on_cut = drain|maint
};

[[nodiscard]] std::string agent_answer(const snapshot::Payload& payload, const AgentSettings& settings);

class AgentListener {
 public:
  [[nodiscard]] static Result<AgentListener> open(const AgentSettings& settings);
  [[nodiscard]] int fd() const noexcept { return listener_.get(); }
  // Accepts every pending connection and answers each (never blocks).
  void serve(const std::string& answer) noexcept;

 private:
  UniqueFd listener_;
};

}  // namespace coupecircuit
