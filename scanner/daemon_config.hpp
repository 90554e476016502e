// coupecircuitd's configuration: an INI file (default
// /etc/coupecircuit/coupecircuitd.conf, parsed with inih), then command-line
// flags that override it. Every key is documented in conf.d/coupecircuitd.conf
// and in the README.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "agent.hpp"
#include "result.hpp"
#include "session_scanner.hpp"

namespace coupecircuit {

inline constexpr const char* kDefaultConfigPath = "/etc/coupecircuit/coupecircuitd.conf";

struct DaemonConfig {
  ScanOptions scan;                       // [sessions]
  std::uint32_t rescan_interval_s = 60;   // [sessions] rescan_interval: full rescan period
  std::string snapshot_path = "/run/coupecircuit/snapshot";  // [snapshot] path
  std::string state_path = "/var/lib/coupecircuit/state";    // [state] path
  std::string log_level = "info";         // [log] level: error|warning|notice|info|debug
  AgentSettings agent;                    // [agent] port, bind, sessions, load
};

// Applies the file's settings over `base`. Errors name the file and line.
[[nodiscard]] Result<DaemonConfig> parse_daemon_config_text(std::string_view text, const std::string& source_name,
                                                            DaemonConfig base = {});
// A missing file is an error only when required (an explicit --config).
[[nodiscard]] Result<DaemonConfig> load_daemon_config(const std::string& path, bool required);

}  // namespace coupecircuit
