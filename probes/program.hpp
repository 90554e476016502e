// coupecircuit-probes' life: load the configuration (exit 2 when invalid),
// start the probes, write the results file on every change and at least once
// per shortest period, SIGHUP reloads (a bad configuration keeps the running
// probes), SIGTERM/SIGINT stop; sd_notify READY/RELOADING/STOPPING and a
// watchdog ping every second.
#pragma once

#include <functional>

#include "probe_config.hpp"
#include "result.hpp"

namespace coupecircuit::probes {

struct ProgramOptions {
  bool once = false;  // check every probe once, write the results, exit 0
  // Loads, parses and prepares the configuration (prepare_probes).
  std::function<Result<ProbesConfig>()> load_config;
  // Leaves the terminal once the configuration was accepted (nullptr: stay).
  std::function<bool()> detach;
};

// The exit status: 0, 1 (cannot run), 2 (configuration error at start).
[[nodiscard]] int run_probes_program(const ProgramOptions& options);

}  // namespace coupecircuit::probes
