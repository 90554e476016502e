// coupecircuitd's main loop: full scans, inotify-driven updates, load
// signals, control state, snapshot publishing, signals and sd_notify.
#pragma once

#include <functional>

#include "daemon_config.hpp"
#include "result.hpp"

namespace coupecircuit {

struct DaemonRunOptions {
  bool once = false;  // one scan, one publish, exit
  // Loads the configuration (file, then command-line overrides); called at
  // start and again on SIGHUP.
  std::function<Result<DaemonConfig>()> load_config;
  // Leaves the terminal (classic daemon), called once the configuration and
  // every resource it names were checked and opened; false: it failed. Unset:
  // stay in the foreground.
  std::function<bool()> detach;
};

// Returns the process exit status.
int run_daemon(const DaemonRunOptions& options);

}  // namespace coupecircuit
